"""Report of the images skipped by ``LoadCXRImage(on_error='skip')`` and of how
``LimitedPairingDataset`` filled their places."""
from typing import List

import torch
from mmengine.dist import all_gather_object, all_reduce, get_world_size
from mmengine.hooks import Hook
from mmengine.logging import print_log

from lgdea.datasets.limited_pairing import replacement_stats, reset_replacements
from lgdea.datasets.transforms.loading import corrupt_image_stats, reset_corrupt_images
from lgdea.registry import HOOKS

__all__ = ['CorruptImageReportHook']


@HOOKS.register_module()
class CorruptImageReportHook(Hook):
    """At the end of every training epoch, log how many images were skipped as missing or
    corrupt (summed over ranks) and the first few paths, and how the limited-pairing dataset
    filled their places (items replaced by an item of the same pool, pairs dropped from their
    batch), then reset the counts.

    The counts are also stored in the message hub as ``train/num_corrupt_images``,
    ``train/num_replaced_items`` and ``train/num_dropped_pairs``.

    Args:
        max_paths: how many paths to show.
    """

    priority = 'LOW'

    def __init__(self, max_paths: int = 5):
        self.max_paths = int(max_paths)
        self.last_count = 0
        self.last_paths: List[dict] = []
        self.last_replaced = 0
        self.last_dropped_pairs = 0

    def after_train_epoch(self, runner) -> None:
        count, first = corrupt_image_stats(max_paths=self.max_paths)
        reset_corrupt_images()
        replaced, dropped, _ = replacement_stats()
        reset_replacements()
        if get_world_size() > 1:
            total = torch.tensor([count, replaced, dropped], dtype=torch.long)
            all_reduce(total, op='sum')  # mmengine moves it to the backend's device and back
            count, replaced, dropped = (int(v) for v in total.tolist())
            gathered = all_gather_object(first)
            first = [p for rank_paths in gathered for p in rank_paths][:self.max_paths]
        self.last_count, self.last_paths = count, first
        self.last_replaced, self.last_dropped_pairs = replaced, dropped
        runner.message_hub.update_scalar('train/num_corrupt_images', count)
        runner.message_hub.update_scalar('train/num_replaced_items', replaced)
        runner.message_hub.update_scalar('train/num_dropped_pairs', dropped)
        if count:
            shown = '; '.join(f'{p["img_path"]} ({p["reason"][:120]})' for p in first)
            filled = ''
            if replaced or dropped:
                filled = (f' {replaced} item(s) were replaced by an item of the same pool and '
                          f'{dropped} pair(s) were dropped from their batch (no other image of '
                          'the study loaded).')
            print_log(f'epoch {runner.epoch + 1}: {count} image(s) were missing or corrupt and '
                      f'were skipped (first: {shown}).{filled} Fix or remove them from the '
                      'dataset.', logger='current', level=30)
        else:
            print_log(f'epoch {runner.epoch + 1}: no missing or corrupt image', logger='current')
