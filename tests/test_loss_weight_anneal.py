"""LocalLossWeightAnnealHook: InfoPro's loss weights moved over the run."""
from types import SimpleNamespace

import pytest
import torch
from mmengine.logging import MessageHub
from infopro_seg.engine import InfoProOptimWrapper

from conftest import build_model, make_batch, tiny_deeplab_cfg
from infopro_seg.engine.hooks import LocalLossWeightAnnealHook

SPLITS = ['layer2.0', 'layer3.0']  # K=3: two local modules with w and psi
START = [(3.0, 0.5), (1.5, 1.0)]


def flat(pairs):
    return [value for pair in pairs for value in pair]


def approx_pairs(pairs):
    return pytest.approx(flat(pairs))


def fake_runner(model, iteration=0, max_iters=100):
    hub = MessageHub.get_instance('test_loss_weight_anneal')
    return SimpleNamespace(model=model, iter=iteration, max_iters=max_iters, message_hub=hub)


def started_hook(model, **kwargs):
    hook = LocalLossWeightAnnealHook(**kwargs)
    hook.before_train(fake_runner(model))
    return hook


def k3_model(weights=START):
    return build_model(tiny_deeplab_cfg(split_points=SPLITS, loss_weights=weights))


def test_weights_move_from_the_config_to_the_target_between_begin_and_end():
    model = k3_model()
    hook = started_hook(model, to=(0.0, 1.0), begin=0.2, end=0.6)
    assert hook.weights_at(0, 100) == START
    assert hook.weights_at(20, 100) == START
    assert flat(hook.weights_at(40, 100)) == approx_pairs([(1.5, 0.75), (0.75, 1.0)])
    assert hook.weights_at(60, 100) == [(0.0, 1.0), (0.0, 1.0)]
    assert hook.weights_at(99, 100) == [(0.0, 1.0), (0.0, 1.0)]
    cosine = started_hook(model, curve='cosine')
    assert flat(cosine.weights_at(50, 100)) == approx_pairs([(1.5, 0.75), (0.75, 1.0)])
    # A quarter of the way: moved (1 - cos(pi / 4)) / 2 = 0.1464466 of the distance (linear:
    # 0.25), slow at the start.
    assert flat(cosine.weights_at(25, 100)) == approx_pairs([(2.5606602, 0.5732233),
                                                            (1.2803301, 1.0)])


def test_before_train_iter_sets_the_model_weights_and_logs_them():
    model = k3_model()
    hook = started_hook(model)
    runner = fake_runner(model, iteration=50)
    hook.before_train_iter(runner, batch_idx=50)
    assert flat(model.loss_weights) == approx_pairs([(1.5, 0.75), (0.75, 1.0)])
    assert model.local_loss_weight(0, 'reconstruction') == pytest.approx(1.5)
    assert runner.message_hub.get_scalar('train/m1.lambda1').current() == pytest.approx(1.5)
    assert runner.message_hub.get_scalar('train/m2.lambda2').current() == pytest.approx(1.0)


def test_a_resumed_run_gets_the_weights_of_an_uninterrupted_one():
    model = k3_model()
    through = started_hook(model)
    for iteration in range(30):
        through.before_train_iter(fake_runner(model, iteration), batch_idx=iteration)
    resumed_model = k3_model()
    resumed = started_hook(resumed_model)
    resumed.before_train_iter(fake_runner(resumed_model, 29), batch_idx=0)
    # Iteration 29 of 100, linear from START to (0, 1): 29% of the way.
    assert flat(resumed_model.loss_weights) == approx_pairs([(2.13, 0.645), (1.065, 1.0)])
    assert resumed_model.loss_weights == model.loss_weights


def step_grads(model, local_modules=None):
    """One InfoPro iteration whose gradients stay in ``.grad`` (accumulation: no step)."""
    wrapper = InfoProOptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1),
                                  accumulative_counts=2)
    torch.manual_seed(5)
    log_vars = model.train_step(make_batch(seed=4), wrapper, local_modules=local_modules)
    return log_vars, {n: p.grad.clone() for n, p in model.named_parameters()
                      if p.grad is not None}


def test_modules_built_before_the_change_train_with_the_new_weights():
    # Per-module DDP builds the local modules once; they must still follow the schedule.
    model = k3_model()
    modules = model.local_modules()
    hook = started_hook(model)
    hook.before_train_iter(fake_runner(model, iteration=0), batch_idx=0)
    log_vars, grads = step_grads(model, modules)
    w1 = [n for n in grads if n.startswith('local_heads.0.reconstruction')]
    assert log_vars['m1.loss_recon'] > 0 and any(grads[n].abs().sum() > 0 for n in w1)
    model.zero_grad()
    hook.before_train_iter(fake_runner(model, iteration=100), batch_idx=100)
    log_vars, grads = step_grads(model, modules)
    assert log_vars['m1.loss_recon'] == 0
    assert all(grads[n].abs().sum() == 0 for n in w1)  # w still runs, with weight 0


def test_annealed_to_greedy_gives_greedy_gradients():
    infopro = k3_model()
    started = started_hook(infopro)
    started.before_train_iter(fake_runner(infopro, iteration=100), batch_idx=100)
    greedy = k3_model(weights=[(0.0, 1.0)])
    missing, unexpected = greedy.load_state_dict(infopro.state_dict(), strict=False)
    assert not missing and all('.reconstruction.' in key for key in unexpected)
    _, annealed_grads = step_grads(infopro)
    _, greedy_grads = step_grads(greedy)
    assert set(greedy_grads) <= set(annealed_grads)
    for name, grad in greedy_grads.items():
        torch.testing.assert_close(annealed_grads[name], grad, rtol=1e-5, atol=1e-7,
                                   msg=name)


def test_raising_a_weight_from_zero_fails_clearly():
    model = build_model(tiny_deeplab_cfg(split_points=SPLITS, loss_weights=[(5.0, 0.0),
                                                                            (0.5, 1.0)]))
    with pytest.raises(ValueError, match=r'lambda2 of local module 1 from 0 .* Fix'):
        started_hook(model, to=(0.0, 1.0))
    started_hook(model, to=(0.0, 0.0))  # lambda2 stays 0 where it was: allowed


@pytest.mark.parametrize('kwargs, message', [
    (dict(to=(1.0, )), 'one non-negative'),
    (dict(to=(-1.0, 1.0)), 'one non-negative'),
    (dict(begin=0.5, end=0.5), '0 <= begin < end <= 1'),
    (dict(end=1.5), '0 <= begin < end <= 1'),
    (dict(curve='step'), 'curve is one of'),
])
def test_bad_arguments_fail_clearly(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LocalLossWeightAnnealHook(**kwargs)


def test_a_model_without_local_losses_is_refused():
    e2e = build_model(tiny_deeplab_cfg(type='EncoderDecoder'))
    with pytest.raises(TypeError, match='needs an InfoProEncoderDecoder'):
        LocalLossWeightAnnealHook().before_train(fake_runner(e2e))
