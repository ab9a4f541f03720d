"""Report of the images skipped by ``LoadCXRImage(on_error='skip')``."""
from typing import List

import torch
from mmengine.dist import all_gather_object, all_reduce, get_world_size
from mmengine.hooks import Hook
from mmengine.logging import print_log

from lgdea.datasets.transforms.loading import corrupt_image_stats, reset_corrupt_images
from lgdea.registry import HOOKS

__all__ = ['CorruptImageReportHook']


@HOOKS.register_module()
class CorruptImageReportHook(Hook):
    """At the end of every training epoch, log how many images were skipped as missing or
    corrupt (summed over ranks) and the first few paths, then reset the count.

    The count is also stored in the message hub as ``train/num_corrupt_images``.

    Args:
        max_paths: how many paths to show.
    """

    priority = 'LOW'

    def __init__(self, max_paths: int = 5):
        self.max_paths = int(max_paths)
        self.last_count = 0
        self.last_paths: List[dict] = []

    def after_train_epoch(self, runner) -> None:
        count, first = corrupt_image_stats(max_paths=self.max_paths)
        reset_corrupt_images()
        if get_world_size() > 1:
            total = torch.tensor([count], dtype=torch.long)
            all_reduce(total, op='sum')  # mmengine moves it to the backend's device and back
            count = int(total.item())
            gathered = all_gather_object(first)
            first = [p for rank_paths in gathered for p in rank_paths][:self.max_paths]
        self.last_count, self.last_paths = count, first
        runner.message_hub.update_scalar('train/num_corrupt_images', count)
        if count:
            shown = '; '.join(f'{p["img_path"]} ({p["reason"][:120]})' for p in first)
            print_log(f'epoch {runner.epoch + 1}: {count} image(s) were missing or corrupt and '
                      f'were skipped (first: {shown}). Fix or remove them from the dataset.',
                      logger='current', level=30)
        else:
            print_log(f'epoch {runner.epoch + 1}: no missing or corrupt image', logger='current')
