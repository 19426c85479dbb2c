from .checkpointing import (CHECKPOINT_PARTS, DEFAULT_GRANULARITY, HEAD_GRANULARITIES,
                            BlockCheckpointGuard, CheckpointedUnit, checkpoint_call,
                            guard_with_cp_blocks, layer_checkpointed_view, parse_checkpointing,
                            wrap_units_for_checkpointing)

__all__ = ['CHECKPOINT_PARTS', 'DEFAULT_GRANULARITY', 'HEAD_GRANULARITIES', 'BlockCheckpointGuard',
           'CheckpointedUnit', 'checkpoint_call', 'guard_with_cp_blocks', 'layer_checkpointed_view',
           'parse_checkpointing', 'wrap_units_for_checkpointing']
