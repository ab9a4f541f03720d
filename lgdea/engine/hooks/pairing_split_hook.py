"""Writes the limited-pairing split to the work dir and logs the realised batch counts."""
import os.path as osp

from mmengine.hooks import Hook

from lgdea.registry import HOOKS


@HOOKS.register_module()
class PairingSplitHook(Hook):
    """Dumps ``LimitedPairingDataset.split_info()`` to ``<work_dir>/pairing_split.json``
    before training, so every run records which studies were paired (and with which seed).

    In the paired-only mode (no ``PropagationSampler``) it also refuses, before the first
    iteration, a global batch larger than the paired pool
    (``LimitedPairingDataset.check_batch_size``).
    """

    priority = 'VERY_LOW'

    def __init__(self, filename: str = 'pairing_split.json'):
        self.filename = filename

    def before_train(self, runner) -> None:
        dataset = runner.train_dataloader.dataset
        if not hasattr(dataset, 'dump_split'):
            runner.logger.warning('PairingSplitHook: the train dataset is not a '
                                  'LimitedPairingDataset; nothing to record.')
            return
        path = osp.join(runner.work_dir, self.filename)
        if runner.rank == 0:
            dataset.dump_split(path)
        bs = runner.train_dataloader.batch_sampler
        if not hasattr(bs, 'n_paired') and runner.train_dataloader.batch_size:
            world = runner.world_size
            dataset.check_batch_size(runner.train_dataloader.batch_size * world, world)
        extra = ''
        if hasattr(bs, 'n_paired'):
            extra = (f'; per global batch: {bs.n_paired} paired studies, '
                     f'{bs.n_unpaired} unpaired images and reports, {len(bs)} batches/epoch')
        runner.logger.info(f'Pairing split written to {path}{extra}')
