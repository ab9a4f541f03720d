"""k-means initialisation of the diagnostic prototypes before training (``init='kmeans'``)."""
import numpy as np
import torch
import torch.distributed as torch_dist
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from lgdea.engine.runner.strategies import gathered_params
from lgdea.registry import HOOKS
from lgdea.utils.dist import get_rank, is_distributed


@HOOKS.register_module()
class PrototypeInitHook(Hook):
    """Run faiss spherical k-means over evidence embeddings and set the prototypes ``mu``.

    Before the first iteration, when the model's ``DiagnosticPrototypeHead`` has
    ``init='kmeans'`` and has not been initialised (a resumed run keeps its trained
    prototypes: the head stores that k-means ran), the hook samples ``num_reports`` reports of
    the training set (seed ``seed``), encodes their evidence phrases with the current text
    encoder and projection (``LGDEA.encode_phrases``, no gradient, batches of
    ``batch_size`` phrases) and calls ``DiagnosticPrototypeHead.init_from_embeddings``. Under
    DDP rank 0 clusters and broadcasts the prototypes. With ``init='sphere'`` it does nothing
    (and says so once).

    Args:
        num_reports: reports sampled from the training set (2000).
        batch_size: phrases encoded per forward pass (256).
        seed: seed of the report sample.
    """

    priority = 'NORMAL'

    def __init__(self, num_reports: int = 2000, batch_size: int = 256, seed: int = 0):
        if num_reports < 1 or batch_size < 1:
            raise ValueError(f'PrototypeInitHook: num_reports ({num_reports}) and batch_size '
                             f'({batch_size}) must be >= 1.')
        self.num_reports = num_reports
        self.batch_size = batch_size
        self.seed = seed

    def before_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        head = getattr(model, 'head', None)
        if head is None or not hasattr(head, 'needs_kmeans_init'):
            raise TypeError('PrototypeInitHook needs a model with a DiagnosticPrototypeHead '
                            f'(`model.head`); got {type(model).__name__}.')
        if not head.needs_kmeans_init:
            runner.logger.info('PrototypeInitHook: prototypes already initialised '
                               f'(init={head.init_mode!r}); nothing to do.')
            return
        phrases = self._sample_phrases(runner.train_dataloader.dataset)
        was_training = model.training
        model.eval()
        # FSDP / ZeRO-3 shard the encoders and the prototypes outside the wrapper's forward
        with gathered_params(runner.model, writeback=True):
            with torch.no_grad():
                z = torch.cat([model.encode_phrases(phrases[i:i + self.batch_size])
                               for i in range(0, len(phrases), self.batch_size)])
            model.train(was_training)
            if get_rank() == 0:
                head.init_from_embeddings(z)
            if is_distributed():
                torch_dist.broadcast(head.mu.data, src=0)
                head.kmeans_done.fill_(True)
        runner.logger.info(f'PrototypeInitHook: K={head.num_prototypes} prototypes set by '
                           f'k-means over {z.shape[0]} evidence phrases of '
                           f'{self._n_reports} training reports.')

    def _sample_phrases(self, dataset) -> list:
        reports = getattr(dataset, 'reports', None)
        if reports is None:
            raise TypeError('PrototypeInitHook: the training dataset has no `reports` list '
                            f'({type(dataset).__name__}); use LimitedPairingDataset.')
        with_evidence = [r for r in reports if r.get('evidence')]
        if not with_evidence:
            raise ValueError('PrototypeInitHook: no training report carries `evidence`; set '
                             "the dataset's `evidence=dict(extractor=..., cache_dir=...)` so "
                             'the phrases are attached when the dataset loads.')
        rng = np.random.default_rng(self.seed)
        n = min(self.num_reports, len(with_evidence))
        chosen = rng.choice(len(with_evidence), n, replace=False)
        self._n_reports = n
        return sorted({str(p) for i in chosen for p in with_evidence[i]['evidence']
                       if str(p).strip()})
