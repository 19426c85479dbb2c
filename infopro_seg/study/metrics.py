"""mmseg's IoU metric that also returns every class's IoU, so the run's scalars keep them."""
import math
from typing import Dict, List

from mmseg.evaluation import IoUMetric
from mmseg.registry import METRICS


@METRICS.register_module()
class PerClassIoUMetric(IoUMetric):
    """:class:`mmseg.evaluation.IoUMetric` plus ``IoU.<class name>`` (percent, NaN when the
    class is absent from both labels and predictions) in the returned metrics.

    mmseg prints the per-class table to the log only; returned metrics go to the Runner's
    scalars (``vis_data/scalars.json``), where the study reads them.
    """

    def compute_metrics(self, results: List[tuple]) -> Dict[str, float]:
        metrics = super().compute_metrics(results)
        intersect = sum(result[0] for result in results)
        union = sum(result[1] for result in results)
        iou = (intersect.double() / union.double() * 100).tolist()
        names = self.dataset_meta['classes']
        for name, value in zip(names, iou):
            metrics[f'IoU.{name}'] = value if math.isnan(value) else round(value, 2)
        return metrics
