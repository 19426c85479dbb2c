"""Measuring one method at one crop: build, train a few iterations, count memory and time.

Memory, as reported:

- CUDA: ``torch.cuda.max_memory_allocated()`` over all iterations, cudnn.benchmark off (how
  mmseg's model zoo reports memory).
- CPU (no allocator counter): ``max over time of (bytes saved for backward + gradient bytes) +
  parameter, buffer and optimizer-state bytes`` (see :class:`SavedBytesMeter`). Temporaries that
  no backward needs and allocator overheads are not in it; the process's max RSS is reported
  alongside.
- ``estimated (meta device)``: the CPU accounting of one iteration run on PyTorch's meta device
  (shapes only, nothing allocated), for configs that do not fit this machine's memory. AMP rows
  run that iteration under :class:`~infopro_seg.utils.meta_autocast.EmulatedAutocast` (autocast
  has no meta implementation): the low-precision dtype of the device's autocast (float16 on
  CUDA, bfloat16 on the CPU), parameters, gradients and optimizer state in float32.

:func:`measure_method` runs in a process of its own (see :mod:`.runner`), so peaks never mix.
"""
import os
import resource
import statistics
import sys
import time
import warnings
from typing import Dict, Iterable, Optional

import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper

from ...utils.batch import random_seg_batch
from ...utils.memory import GiB, MiB, storage_key
from ..build import build_on_one_device
from ..meter import measure_step
from .methods import method_model_cfg, method_optim_wrapper_cfg, parse_method

ESTIMATED = 'estimated (meta device)'
MEASURED = 'measured'


def _say(spec: dict, message: str) -> None:
    print(f'  [{spec["method"]} {spec["crop"][0]}x{spec["crop"][1]}] {message}',
          file=sys.stderr, flush=True)


def distinct_storage_bytes(tensors: Iterable) -> int:
    """Bytes of the distinct storages among ``tensors`` (non-tensors are skipped)."""
    seen, total = set(), 0
    for tensor in tensors:
        if not isinstance(tensor, torch.Tensor):
            continue
        key = storage_key(tensor)
        if key not in seen:
            seen.add(key)
            total += tensor.untyped_storage().nbytes()
    return total


def state_bytes(model: torch.nn.Module, optim_wrapper) -> Dict[str, int]:
    """The model state: parameter and buffer bytes, optimizer-state bytes, gradient bytes."""
    params = distinct_storage_bytes(list(model.parameters()) + list(model.buffers()))
    optimizer_state = distinct_storage_bytes(
        value for state in optim_wrapper.optimizer.state.values() for value in state.values())
    grads = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    return dict(params=params, optimizer_state=optimizer_state, grads=grads)


def build_for_method(model_cfg: dict, cfg: Config, device: str, amp: bool, step: bool = False):
    """Model and optimizer wrapper on ``device`` (``'meta'``: nothing allocated).

    Default initialisation suffices for memory and time (and ``init_weights`` would log every
    parameter).
    """
    model = build_on_one_device(model_cfg, device)
    model.to(device)  # also tells the data preprocessor where to put batches
    model.train()
    optim_wrapper = build_optim_wrapper(model, method_optim_wrapper_cfg(cfg, amp, device, step))
    return model, optim_wrapper


def run_iterations(model, optim_wrapper, batch: dict, iters: int, device: str, spec: dict,
                   label: str, emulated_autocast: Optional[torch.dtype] = None) -> dict:
    """Run ``iters`` training steps; return the saved/grad peaks and the times.

    ``emulated_autocast``: run each step under :class:`EmulatedAutocast` of this dtype (AMP on
    the meta device).
    """
    times, cpu_times, peak, peak_saved = [], [], 0, 0
    if device == 'cuda':
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    for i in range(iters):
        meter = None
        start, cpu_start = time.perf_counter(), time.process_time()
        if device == 'cuda':
            model.train_step(batch, optim_wrapper)
        else:
            # Gradients count from their creation until the optimizer step that consumes them
            # (the wrappers zero them right after it): per module with +step.
            meter = measure_step(model, optim_wrapper, batch, emulated_autocast)
        if device == 'cuda':
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
        if meter is not None:
            peak = max(peak, meter.peak_bytes)
            peak_saved = max(peak_saved, meter.peak_saved_bytes)
        _say(spec, f'{label} iteration {i + 1}/{iters}: {times[-1]:.2f} s '
             f'(process CPU time {cpu_times[-1]:.2f} s)')
    result = dict(times=times, cpu_times=cpu_times, peak=peak, peak_saved=peak_saved)
    if device == 'cuda':
        result['cuda_peak'] = torch.cuda.max_memory_allocated()
    return result


def measure_method(spec: dict) -> dict:
    """Benchmark one method at one crop in this process; return its row.

    Args:
        spec: ``config`` (path), ``cfg_options``, ``method``, ``crop`` ``[H, W]``, ``batch``,
            ``iters``, ``device`` (``'cpu'``/``'cuda'``), ``meta`` (``'auto'``: estimate on the
            meta device first and run for real only if the estimate x1.25 fits ``max_mem``
            bytes; ``'always'``: estimate only; ``'never'``: run for real only), ``max_mem`` and
            ``threads``.

    Returns:
        dict: The row (see :data:`~.results.COLUMNS` for the main keys).
    """
    import infopro_seg  # noqa: F401  (registers the models)
    from mmengine.logging import MMLogger
    from mmengine.registry import init_default_scope
    warnings.filterwarnings('ignore')
    if spec.get('threads'):
        torch.set_num_threads(spec['threads'])
    torch.backends.cudnn.benchmark = False
    MMLogger.get_instance('mmengine', log_level='INFO')
    cfg = Config.fromfile(spec['config'])
    if spec.get('cfg_options'):
        cfg.merge_from_dict(spec['cfg_options'])
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    crop, batch, method = spec['crop'], spec['batch'], spec['method']
    parsed = parse_method(method)
    k, amp = parsed.k, parsed.amp
    row = dict(method=method, crop=f'{crop[0]}x{crop[1]}', batch=batch, num_modules=k,
               device=spec['device'], iters=spec['iters'])
    model_cfg, notes = method_model_cfg(cfg, method, crop, batch)

    estimate = None
    if spec['meta'] != 'never':
        _say(spec, 'estimating on the meta device ...')
        # The model is built as without AMP (autocast does not convert it); its steps run under
        # the casting rules of the device's autocast.
        model, optim_wrapper = build_for_method(model_cfg, cfg, 'meta', amp=False,
                                                step=parsed.step)
        num_classes = model.decode_head.num_classes
        low = (torch.float16 if spec['device'] == 'cuda' else torch.bfloat16) if amp else None
        run = run_iterations(model, optim_wrapper,
                             random_seg_batch(batch, crop, num_classes, 'meta'), 1, 'meta', spec,
                             'meta', emulated_autocast=low)
        state = state_bytes(model, optim_wrapper)
        static = state['params'] + state['optimizer_state']
        estimate = dict(activations=run['peak_saved'], peak=run['peak'] + static, state=state)
        row['split_points'] = list(getattr(model.backbone, 'split_points', []))
        row.update(estimated_activations_mb=round(run['peak_saved'] / MiB, 1),
                   estimated_peak_mb=round(estimate['peak'] / MiB, 1))
        del model, optim_wrapper

    real = spec['meta'] == 'never' or (spec['meta'] == 'auto' and (
        estimate is None or estimate['peak'] * 1.25 <= spec['max_mem']))
    if not real:
        if spec['meta'] == 'auto':
            notes.append(f'estimate x1.25 exceeds the {spec["max_mem"] / GiB:.1f} GiB a real '
                         'run may use')
        if amp:
            notes.append('AMP emulated on meta')
        state = estimate['state']
        row.update(figure=ESTIMATED, activations_mb=row['estimated_activations_mb'],
                   peak_mb=row['estimated_peak_mb'])
    else:
        device = spec['device']
        _say(spec, f'building on {device} ...')
        model, optim_wrapper = build_for_method(model_cfg, cfg, device, amp, step=parsed.step)
        data = random_seg_batch(batch, crop, model.decode_head.num_classes, 'cpu')
        run = run_iterations(model, optim_wrapper, data, spec['iters'], device, spec, 'train')
        state = state_bytes(model, optim_wrapper)
        static = state['params'] + state['optimizer_state']
        timed = run['times'][1:] or run['times']
        cpu_timed = run['cpu_times'][1:] or run['cpu_times']
        if len(run['times']) == 1:
            notes.append('one iteration: its time includes the warm-up')
        split_points = list(getattr(model.backbone, 'split_points', []))
        row.update(figure=MEASURED, split_points=split_points,
                   time_s=round(statistics.median(timed), 3),
                   times_s=[round(t, 3) for t in run['times']],
                   load_avg=[round(v, 2) for v in os.getloadavg()])
        if device != 'cuda':  # on CUDA the host CPU time says little about the work
            row['cpu_time_s'] = round(statistics.median(cpu_timed), 3)
        if device == 'cuda':
            row['peak_mb'] = round(run['cuda_peak'] / MiB, 1)
        else:
            row.update(activations_mb=round(run['peak_saved'] / MiB, 1),
                       peak_mb=round((run['peak'] + static) / MiB, 1))
        row['max_rss_mb'] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        if amp and device != 'cuda':
            notes.append('AMP on CPU: bfloat16 autocast')
    row.update(state_mb=round((state['params'] + state['optimizer_state'] + state['grads'])
                              / MiB, 1),
               param_mb=round(state['params'] / MiB, 1),
               optimizer_state_mb=round(state['optimizer_state'] / MiB, 1),
               grad_mb=round(state['grads'] / MiB, 1))
    if notes:
        row['note'] = '; '.join(notes)
    return row
