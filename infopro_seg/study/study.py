"""The study loop: every method and seed in turn, results rewritten after each run."""
import json
import os
import os.path as osp
import time
import traceback
from typing import List, Optional

from ..fileio.atomic import atomic_write_bytes
from .methods import METHODS, check_methods
from .report import format_table, plot_miou_vs_memory, summarise, write_csv, write_json
from .runs import (log_tail, peak_training_mb, read_scalars, run_config, run_log, run_row,
                   summarise_scalars, write_run_config)
from .training import TrainFunction, train_in_process


def run_study(config: str, methods: List[str], seeds: List[int], work_dir: str,
              iters: Optional[int] = None, data_root: Optional[str] = None,
              cfg_options: Optional[dict] = None, memory: Optional[str] = 'meta',
              learnt_iou: float = 10.0, reuse: bool = False,
              train: TrainFunction = train_in_process) -> dict:
    """Train, evaluate and tabulate ``methods`` x ``seeds`` on one config.

    After every run ``results.json`` (rows, summaries, settings), ``runs.csv``, ``summary.csv``
    and ``miou_vs_memory.png`` in ``work_dir`` are rewritten (atomically), so an interrupted
    study keeps the runs it finished. Each run's config is written to
    ``work_dir/<method>/seed<seed>/config.py`` and trained there by ``train``; a run that raises
    is recorded as failed and the study goes on.

    Args:
        config: The study's InfoPro config.
        methods: Names from :data:`METHODS`.
        seeds: One run per method and seed.
        work_dir: Output folder.
        iters: Training iterations (default: the config's).
        data_root: Data for every loader (default: the config's).
        cfg_options: Overrides applied to every run before the method's.
        memory: Where to count every method's peak memory (one training step each):
            ``'meta'`` (nothing allocated; the CPU where a loss cannot run on meta), ``'cpu'``,
            or ``None`` (not measured).
        learnt_iou: A class counts as learnt at this IoU (percent) or more.
        reuse: Keep the result of a run whose ``result.json`` exists instead of training again.
        train: Trains one run from its config file into its folder
            (:data:`~infopro_seg.study.training.TrainFunction`): :func:`train_in_process`
            (default), or :func:`~infopro_seg.study.training.train_in_spawned_process` to give
            every run a fresh process.

    Returns:
        dict: ``rows``, ``summaries``, ``table`` and ``failed`` (number of failed runs).
    """
    check_methods(methods)
    if not seeds:
        raise ValueError('give at least one seed')
    # Absolute paths: they are recorded in results.json and in every run's config.
    config, work_dir = osp.abspath(config), osp.abspath(work_dir)
    data_root = osp.abspath(data_root) if data_root is not None else None
    os.makedirs(work_dir, exist_ok=True)
    settings = dict(config=config, methods=methods, seeds=seeds, iters=iters,
                    data_root=data_root, cfg_options=cfg_options, learnt_iou=learnt_iou,
                    descriptions={m: METHODS[m].description for m in methods})
    rows: List[dict] = []
    for method in methods:
        peak = None
        for seed in seeds:
            cfg = run_config(config, method, seed, iters, data_root, cfg_options)
            run_dir = osp.join(work_dir, method, f'seed{seed}')
            result_path = osp.join(run_dir, 'result.json')
            if reuse and osp.isfile(result_path):
                with open(result_path) as f:
                    row = json.load(f)
                print(f'[study] {method} seed {seed}: reusing {result_path}', flush=True)
            else:
                row = _train_and_read(cfg, method, seed, run_dir, learnt_iou, train)
            if memory and row.get('status') == 'ok' and row.get('peak_mb') is None:
                if peak is None:
                    peak = peak_training_mb(cfg, memory)
                row['peak_mb'], row['peak_counted_on'] = peak
            write_json(row, result_path)
            rows.append(row)
            summaries = summarise(rows, methods)
            _write_outputs(work_dir, rows, summaries, settings, learnt_iou)
    summaries = summarise(rows, methods)
    return dict(rows=rows, summaries=summaries, table=format_table(summaries, learnt_iou),
                failed=sum(1 for r in rows if r.get('status') != 'ok'))


def _train_and_read(cfg, method: str, seed: int, run_dir: str, learnt_iou: float,
                    train: TrainFunction) -> dict:
    row = run_row(method, seed, cfg)
    print(f"[study] {method} (K={row['K']}) seed {seed}: training {row['iters']} iterations "
          f'in {run_dir}', flush=True)
    config_path = write_run_config(cfg, run_dir)
    start = time.perf_counter()
    try:
        train(config_path, run_dir)
    except Exception as error:  # a failed run is a result of the study, not its end
        traceback.print_exc()
        log = run_log(run_dir)
        print(f'[study] {method} seed {seed} FAILED ({type(error).__name__}: {error})'
              + (f'; the end of {log}:\n{log_tail(log)}' if log else ''), flush=True)
        row.update(status='failed', error=f'{type(error).__name__}: {error}', log=log,
                   train_seconds=time.perf_counter() - start, peak_mb=None)
        return row
    row.update(train_seconds=time.perf_counter() - start, log=run_log(run_dir), peak_mb=None)
    try:
        row.update(summarise_scalars(read_scalars(run_dir), learnt_iou), status='ok')
    except (FileNotFoundError, ValueError) as error:
        print(f'[study] {method} seed {seed}: no results ({error})', flush=True)
        row.update(status='failed', error=str(error))
        return row
    print(f"[study] {method} seed {seed}: mIoU {row['miou']:.2f}, "
          f"{row['learnt_classes']} classes learnt, {row['train_seconds']:.0f} s", flush=True)
    return row


def _write_outputs(work_dir: str, rows: List[dict], summaries: List[dict], settings: dict,
                   learnt_iou: float) -> None:
    write_json(dict(settings=settings, summaries=summaries, rows=rows),
               osp.join(work_dir, 'results.json'))
    write_csv(rows, osp.join(work_dir, 'runs.csv'))
    write_csv(summaries, osp.join(work_dir, 'summary.csv'))
    plot_miou_vs_memory(summaries, osp.join(work_dir, 'miou_vs_memory.png'),
                        f"{osp.basename(settings['config'])}, {len(settings['seeds'])} seed(s)")
    atomic_write_bytes((format_table(summaries, learnt_iou) + '\n').encode(),
                       osp.join(work_dir, 'table.txt'))
