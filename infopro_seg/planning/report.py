"""Plans as text: the per-module table, the one-line comparison, the budget message."""
from ..utils.memory import GiB, MiB


def describe_plan(plan) -> str:
    """A small table: one line per module, then the peak (for logs and the CLI)."""
    profile = plan.profile
    lines = [f'K={plan.num_modules}, split points {plan.split_points} (crop '
             f'{profile.crop_size[0]}x{profile.crop_size[1]}, batch {profile.batch_size}, '
             f'measured on {profile.device}; activations = bytes saved for backward, MiB)',
             f'{"module":<8}{"units":<24}{"units":>10}{"in/out":>9}{"w":>9}{"psi":>9}'
             f'{"seg heads":>11}{"transient":>11}{"total":>10}']
    for k, module in enumerate(plan.modules):
        first, last = module['units']
        units = f'{profile.unit_names[first]}..{profile.unit_names[last]}'
        in_out = module['input_bytes'] + module['output_bytes']
        lines.append(
            f'{k + 1:<8}{units:<24}{module["units_bytes"] / MiB:>10.1f}{in_out / MiB:>9.1f}'
            f'{module["recon_bytes"] / MiB:>9.1f}{module["classifier_bytes"] / MiB:>9.1f}'
            f'{module["seg_head_bytes"] / MiB:>11.1f}{module["transient_bytes"] / MiB:>11.1f}'
            f'{module["total_bytes"] / MiB:>10.1f}')
    lines.append(f'largest module {plan.peak_bytes / MiB:.1f} MiB; model state (params + '
                 f'grads + optimizer, x{profile.state_factor}) {plan.state_bytes / MiB:.1f} '
                 f'MiB; together {plan.peak_with_state_bytes / GiB:.2f} GiB')
    return '\n'.join(lines)


def summarize_plan(name: str, plan) -> str:
    """One line: a plan's name, its split points, its largest module and every module (MiB)."""
    modules = ', '.join(f'{m["total_bytes"] / MiB:.0f}' for m in plan.modules)
    return (f'{name:<28} {str(plan.split_points):<48} largest {plan.peak_bytes / MiB:9.1f} MiB  '
            f'(modules: {modules} MiB)')


def budget_message(best, budget_gb: float) -> str:
    """The message when no K fits a budget: what the best split would need."""
    profile = best.profile
    return (f'no K fits a budget of {budget_gb:g} GiB for crop {profile.crop_size[0]}x'
            f'{profile.crop_size[1]}, batch {profile.batch_size}: the smallest achievable peak is '
            f'{best.peak_with_state_bytes / GiB:.2f} GiB (K={best.num_modules}, split points '
            f'{best.split_points}: largest module {best.peak_bytes / GiB:.2f} GiB of activations '
            f'+ {best.state_bytes / GiB:.2f} GiB model state); use a smaller crop or batch, AMP, '
            'or more memory')
