from .checkpointing import (CHECKPOINT_PARTS, BlockCheckpointGuard, CheckpointedUnit,
                            checkpoint_call, guard_with_cp_blocks, parse_checkpointing,
                            wrap_units_for_checkpointing)

__all__ = ['CHECKPOINT_PARTS', 'BlockCheckpointGuard', 'CheckpointedUnit', 'checkpoint_call',
           'guard_with_cp_blocks', 'parse_checkpointing', 'wrap_units_for_checkpointing']
