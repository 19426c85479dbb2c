from .resumable_infinite_sampler import ResumableInfiniteSampler, SampleIndex

__all__ = ['ResumableInfiniteSampler', 'SampleIndex']
