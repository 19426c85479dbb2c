"""Publishing: a training checkpoint reduced to the network mmseg deploys."""
import hashlib
import io
import os.path as osp

import torch

from ..fileio import atomic_write_bytes, load_checkpoint_safely

#: State-dict prefixes of the training-only InfoPro heads (dropped for deployment).
TRAINING_ONLY_PREFIXES = ('local_heads.', )


def publish_checkpoint(src: str, dst: str, add_hash: bool = True) -> str:
    """Make a deployable checkpoint: weights of the plain network only.

    Drops the local heads (w, psi), the optimizer state and the runner's bookkeeping; what is left
    loads with strict key matching into mmseg's own EncoderDecoder of the same architecture.

    Args:
        src: A training checkpoint (loaded weights-only, see
            :func:`~infopro_seg.fileio.load_checkpoint_safely`).
        dst: Output path (``.pth``).
        add_hash: Append the first 8 hex digits of the file's SHA-256 to its name, as mmseg's
            model zoo does (``name-1a2b3c4d.pth``).

    Returns:
        str: The path written (atomically).

    Raises:
        CheckpointError: ``src`` cannot be loaded (the message says why).
    """
    checkpoint = load_checkpoint_safely(src, map_location='cpu')
    state_dict = checkpoint.get('state_dict', checkpoint)
    kept = {key: value for key, value in state_dict.items()
            if not key.startswith(TRAINING_ONLY_PREFIXES)}
    meta = {key: value for key, value in checkpoint.get('meta', {}).items()
            if key in ('mmengine_version', 'dataset_meta', 'iter', 'epoch', 'seed', 'time')}
    buffer = io.BytesIO()
    torch.save(dict(meta=meta, state_dict=kept), buffer)
    data = buffer.getvalue()
    if add_hash:
        dst = f'{osp.splitext(dst)[0]}-{hashlib.sha256(data).hexdigest()[:8]}.pth'
    atomic_write_bytes(data, dst)
    return dst
