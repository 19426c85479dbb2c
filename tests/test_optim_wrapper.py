"""InfoPro's optimizer wrappers: the local-step protocol, stepping each module, non-finite
losses, the constructor, and the project's use of public mmengine state only."""
import os
import re

import pytest
import torch
from mmengine.optim import OptimWrapper, build_optim_wrapper

from conftest import REPO, build_model, make_batch, tiny_deeplab_cfg
from infopro_seg.engine import DeviceAmpOptimWrapper, InfoProOptimWrapper
from infopro_seg.errors import ConfigError, TrainingStopped

CUTS = ['layer1.1', 'layer3.0']  # K=3


def _params(model):
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def _optimizer(kind, params):
    if kind == 'sgd':
        return torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=5e-4)
    return torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01)


@pytest.mark.parametrize('kind', ['sgd', 'adamw'])
def test_stepping_each_module_equals_one_step_per_iteration(kind):
    results = []
    for step_each_module in (False, True):
        model = build_model(tiny_deeplab_cfg(split_points=CUTS))
        wrapper = InfoProOptimWrapper(_optimizer(kind, model.parameters()),
                                      step_each_module=step_each_module)
        for seed in range(3):
            torch.manual_seed(seed)  # dropout
            model.train_step(make_batch(seed=seed), wrapper)
        results.append((_params(model), wrapper.optimizer.state_dict()['state']))
    (plain, plain_state), (each, each_state) = results
    for name, value in plain.items():
        assert torch.equal(value, each[name]), name
    assert plain_state.keys() == each_state.keys()
    for index, entry in plain_state.items():
        for key, value in entry.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(each_state[index][key]))


def test_stepping_each_module_frees_its_gradients_before_the_next_module_runs():
    model = build_model(tiny_deeplab_cfg(split_points=CUTS))
    wrapper = InfoProOptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1),
                                  step_each_module=True)
    first_module = list(model.backbone.stem.parameters())
    seen = []
    model.backbone.layer2[0].register_forward_hook(
        lambda *args: seen.append([p.grad is None for p in first_module]))
    before = [p.detach().clone() for p in first_module]
    model.train_step(make_batch(), wrapper)
    assert seen == [[True] * len(first_module)]  # module 1 stepped and freed its gradients
    assert all(not torch.equal(b, p) for b, p in zip(before, first_module))


def test_one_step_per_iteration_keeps_gradients_until_the_end():
    model = build_model(tiny_deeplab_cfg(split_points=CUTS))
    wrapper = InfoProOptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    first_module = list(model.backbone.stem.parameters())
    seen = []
    model.backbone.layer2[0].register_forward_hook(
        lambda *args: seen.append(all(p.grad is not None for p in first_module)))
    model.train_step(make_batch(), wrapper)
    assert seen == [True]


def test_accumulation_counts_iterations_not_modules():
    model = build_model(tiny_deeplab_cfg(split_points=CUTS))
    wrapper = InfoProOptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1),
                                  accumulative_counts=2)
    before = _params(model)
    model.train_step(make_batch(seed=0), wrapper)
    assert wrapper.inner_count == 1  # three local backward passes, one iteration
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())
    model.train_step(make_batch(seed=1), wrapper)
    assert wrapper.inner_count == 2
    assert any(not torch.equal(p, before[n]) for n, p in model.named_parameters())
    assert all(p.grad is None for p in model.parameters())


def test_stepping_each_module_refuses_accumulation():
    param = torch.nn.Parameter(torch.zeros(1))
    with pytest.raises(ConfigError, match='accumulative_counts=2'):
        InfoProOptimWrapper(torch.optim.SGD([param], lr=0.1), accumulative_counts=2,
                            step_each_module=True)


@pytest.mark.parametrize('step_each_module', [False, True])
def test_nonfinite_loss_stops(step_each_module):
    """A NaN in module 2's psi loss stops the run naming the module, the term and the
    iteration; nothing of module 2 or later changed (nothing at all with one step)."""
    model = build_model(tiny_deeplab_cfg(split_points=CUTS))
    psi = model.local_heads[1]['classifier']
    original = psi.loss_by_feat
    psi.loss_by_feat = lambda *args: {k: v * float('nan') if 'loss' in k else v
                                      for k, v in original(*args).items()}
    wrapper = InfoProOptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1),
                                  step_each_module=step_each_module)
    before = _params(model)
    with pytest.raises(TrainingStopped) as error:
        model.train_step(make_batch(), wrapper)
    message = str(error.value)
    assert 'local module 2 at iteration 1' in message and 'm2.loss_ce=nan' in message
    assert '\n' not in message
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    if step_each_module:
        first = ('backbone.stem', 'backbone.layer1', 'local_heads.0')
        assert changed and all(n.startswith(first) for n in changed)
    else:
        assert not changed


def test_amp_wrapper_skips_the_check_and_its_scaler_handles_overflow():
    model = build_model(tiny_deeplab_cfg(split_points=CUTS))
    wrapper = DeviceAmpOptimWrapper(optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    assert not wrapper.check_finite


def test_constructor_builds_the_infopro_version_of_the_configured_wrapper():
    model = build_model(tiny_deeplab_cfg(split_points=CUTS))
    optimizer = dict(type='SGD', lr=0.1, momentum=0.9)
    wrapper = build_optim_wrapper(model, dict(constructor='InfoProOptimWrapperConstructor',
                                              type='OptimWrapper', optimizer=optimizer,
                                              step_each_module=True))
    assert type(wrapper) is InfoProOptimWrapper and wrapper.step_each_module
    wrapper = build_optim_wrapper(model, dict(constructor='InfoProOptimWrapperConstructor',
                                              type='DeviceAmpOptimWrapper', optimizer=optimizer))
    assert type(wrapper) is DeviceAmpOptimWrapper
    with pytest.raises(ConfigError, match='cannot drive InfoPro'):
        build_optim_wrapper(model, dict(constructor='InfoProOptimWrapperConstructor',
                                        type='ApexOptimWrapper', optimizer=optimizer))


def test_a_plain_mmengine_wrapper_is_refused_with_the_fix():
    model = build_model(tiny_deeplab_cfg(split_points=CUTS))
    with pytest.raises(ConfigError, match="constructor='InfoProOptimWrapperConstructor'"):
        model.train_step(make_batch(), OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1)))


def test_the_project_writes_no_private_state_of_mmengine_mmseg_or_torch():
    # Another object's attributes; a subclass keeps its own (``self.``) as its base asks.
    pattern = re.compile(r"optim_wrapper\._|_schemes|__dict__\['_modules'\]|_enable_normalize|"
                         r'(?<!self)\.dataloader_iterator\s*=')
    found = []
    for folder, _, files in os.walk(os.path.join(REPO, 'infopro_seg')):
        for name in files:
            if name.endswith('.py'):
                path = os.path.join(folder, name)
                with open(path) as f:
                    found += [f'{path}:{i}' for i, line in enumerate(f, 1)
                              if pattern.search(line)]
    assert found == []
