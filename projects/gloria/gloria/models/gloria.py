"""GLoRIA: global-local representations for images using attention (Huang et al., ICCV 2021)."""
import math
from typing import Dict, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import print_log

from lgdea.models import BaseVLPModel
from lgdea.models.utils import gather_pair_batch
from lgdea.registry import MODELS
from ..text_processing import gloria_clean_text, impression_section, sample_sentence
from .attention import WORD_REDUCTIONS, check_variant, chunked_local_scores
from .text_encoder import subword_table

__all__ = ['GLoRIA']


@MODELS.register_module()
class GLoRIA(BaseVLPModel):
    """GLoRIA as the official code computes it (docs/baselines.md, section 1).

    Training (Eq. T1): ``L = w_l L_l + w_g L_g`` (both weights 1), with the global loss
    :class:`GLoRIAGlobalLoss` on ``(vbar, tbar)`` and the local loss :class:`GLoRIALocalLoss` on
    the projected region features and the word features. The training caption of a report is
    one random cleaned sentence per step (``train_caption='sentence'``).

    Inference (docs/architecture.md, section 4):

    - ``extract_image`` -> ``embed`` (normalised ``vbar``), ``patch_embed`` (normalised region
      features, for the shared BioViL-style grounding map), ``patch_norm`` (their norms: the
      un-normalised region features are ``patch_embed * patch_norm``), ``grid``, ``probe``
      (pooled layer4 for ResNet, the un-projected CLS for ViT);
    - ``extract_text`` -> ``embed`` (normalised ``tbar``), ``word_embed`` [N, T, D] (word
      features), ``word_mask`` [N, T] (the words of the similarity);
    - ``similarity`` (Eq. S1, official zero-shot code): ``(R_max + cos(vbar, tbar)) / 2`` with
      ``R_max = tau2 max_i cos(e_i, c_i)`` over the words (``[CLS]`` and ``[SEP]`` excluded) and
      the same word-region attention as training. Prompt aggregation and z-scoring are the
      metric's. Text features that carry only ``embed`` (the metric's ``mean_embedding``
      prompt aggregation) get the global cosine.

    ``variant='official'`` follows the released code (double softmax, log-sum-exp without the
    ``1 / tau2`` power, ``[CLS]`` in the training words); ``'clean'`` the paper (single
    softmax over regions, the ``1 / tau2`` power, no ``[CLS]``).

    Args:
        image_encoder: config of a :class:`GLoRIAImageEncoder`.
        text_encoder: config of a :class:`GLoRIATextEncoder`; its width must equal the image
            embedding width (official: 768, no text projection).
        variant: ``'official'`` or ``'clean'``.
        temp1, temp2, temp3: ``tau1`` (attention), ``tau2`` (word aggregation), ``tau3``
            (logit scale of both losses).
        learnable_temp3: learn ``tau3`` (a departure; official: fixed). ``tau3`` becomes the
            parameter ``log_temp3`` initialised at ``log(temp3)``, shared by the global and
            the local loss, clamped to at most ``max_temp3`` (the CLIP recipe); logged as
            ``temp3``. Inference does not use ``tau3``.
        max_temp3: upper bound of the learnable ``tau3`` (CLIP: 100).
        global_loss_weight, local_loss_weight: ``w_g``, ``w_l``.
        global_loss, local_loss: loss configs; the temperatures and variant above are filled in
            unless given there.
        gather: gather the global embeddings across ranks for the global loss (True; the
            official code ran single-GPU ``dp``; one process: no-op). The local loss is per
            rank (official).
        train_include_cls: ``[CLS]`` among the words of the local loss; None follows
            ``variant`` (official True, clean False). ``[SEP]`` is always excluded.
        train_caption: ``'sentence'`` (one random cleaned sentence per step, official) or
            ``'full'`` (all sentences joined).
        train_caption_section: where the training caption comes from: ``'report'`` (the
            shared report text, every section; default) or ``'impression'`` (the IMPRESSION
            section, the whole report when it has none: the official model's input, the
            CheXpert impression column). Evaluation texts are not affected.
        drop_section_headers: remove ``FINDINGS:``-style headers before cleaning.
        similarity_mode: ``'both'`` (official mean), ``'global'`` or ``'local'``.
        similarity_word_reduce: ``'max'`` (official zero-shot), ``'sum'`` or ``'mean'``.
        similarity_include_cls: ``[CLS]`` among the words of the similarity (official False).
        similarity_max_elements: largest [n_img, n_txt, T, M] block of the chunked local
            similarity (memory bound).
        max_text_length: tokens of a report / training caption (official 97).
        max_phrase_length: tokens of a prompt / grounding phrase.
        tokenizer: TOKENIZER config; default from ``text_encoder.encoder.name_or_path``.
        data_preprocessor: default ``VLDataPreprocessor``.
    """

    def __init__(self,
                 image_encoder: dict,
                 text_encoder: dict,
                 variant: str = 'official',
                 temp1: float = 4.0,
                 temp2: float = 5.0,
                 temp3: float = 10.0,
                 learnable_temp3: bool = False,
                 max_temp3: float = 100.0,
                 global_loss_weight: float = 1.0,
                 local_loss_weight: float = 1.0,
                 global_loss: Optional[dict] = None,
                 local_loss: Optional[dict] = None,
                 gather: bool = True,
                 train_include_cls: Optional[bool] = None,
                 train_caption: str = 'sentence',
                 train_caption_section: str = 'report',
                 drop_section_headers: bool = True,
                 similarity_mode: str = 'both',
                 similarity_word_reduce: str = 'max',
                 similarity_include_cls: bool = False,
                 similarity_max_elements: Optional[int] = 2**25,
                 max_text_length: int = 97,
                 max_phrase_length: int = 97,
                 tokenizer: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg=None):
        if tokenizer is None:
            tokenizer = _tokenizer_of(text_encoder)
        super().__init__(tokenizer=tokenizer, max_text_length=max_text_length,
                         data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.variant = check_variant(variant)
        self.temp1, self.temp2, self.temp3 = float(temp1), float(temp2), float(temp3)
        self.learnable_temp3 = bool(learnable_temp3)
        self.max_temp3 = float(max_temp3)
        if self.learnable_temp3:
            if not 0 < self.temp3 <= self.max_temp3:
                raise ValueError(f'GLoRIA: learnable temp3 needs 0 < temp3 <= max_temp3, got '
                                 f'temp3={temp3}, max_temp3={max_temp3}')
            self.log_temp3 = nn.Parameter(torch.tensor(math.log(self.temp3)))
        self.image_encoder = MODELS.build(image_encoder)
        text_encoder = dict(text_encoder)
        text_encoder.setdefault('pad_length', max_text_length)
        self.text_encoder = MODELS.build(text_encoder)
        if self.text_encoder.embed_dims != self.image_encoder.embed_dims:
            raise ValueError(
                f'GLoRIA: text features are {self.text_encoder.embed_dims}-d but image '
                f'embeddings {self.image_encoder.embed_dims}-d; set image_encoder.embed_dims to '
                'the text width (official: 768, no text projection) or text_encoder.embed_dims '
                '(adds the emb_local / emb_global projections).')
        self.global_loss = MODELS.build(_with_defaults(
            global_loss or dict(type='GLoRIAGlobalLoss'), temp3=temp3))
        self.local_loss = MODELS.build(_with_defaults(
            local_loss or dict(type='GLoRIALocalLoss'), temp1=temp1, temp2=temp2, temp3=temp3,
            variant=variant))
        self.global_loss_weight = float(global_loss_weight)
        self.local_loss_weight = float(local_loss_weight)
        self.gather = gather
        self.train_include_cls = (variant == 'official') if train_include_cls is None \
            else bool(train_include_cls)
        if train_caption not in ('sentence', 'full'):
            raise ValueError(f'train_caption must be "sentence" or "full", got {train_caption!r}')
        self.train_caption = train_caption
        if train_caption_section not in ('report', 'impression'):
            raise ValueError(f'train_caption_section must be "report" or "impression", got '
                             f'{train_caption_section!r}')
        self.train_caption_section = train_caption_section
        self.drop_section_headers = drop_section_headers
        if similarity_mode not in ('both', 'global', 'local'):
            raise ValueError(f'similarity_mode must be both|global|local, got {similarity_mode!r}')
        if similarity_word_reduce not in WORD_REDUCTIONS:
            raise ValueError(f'similarity_word_reduce must be one of {WORD_REDUCTIONS}, got '
                             f'{similarity_word_reduce!r}')
        self.similarity_mode = similarity_mode
        self.similarity_word_reduce = similarity_word_reduce
        self.similarity_include_cls = bool(similarity_include_cls)
        self.similarity_max_elements = similarity_max_elements
        self.max_phrase_length = max_phrase_length
        self.register_buffer('is_subword', subword_table(self.tokenizer), persistent=False)
        self._warned_global_only = False

    # ------------------------------------------------------------------ text
    def training_caption(self, report: str) -> str:
        """The caption of one report for one training step (refs. 1.2)."""
        if self.train_caption_section == 'impression':
            report = impression_section(report)
        if self.train_caption == 'sentence':
            return sample_sentence(report, self.drop_section_headers)
        return gloria_clean_text(report, self.drop_section_headers)

    def encode_text(self, texts: Sequence[str], max_length: int) -> Dict[str, torch.Tensor]:
        """Tokenise and encode captions -> dict(words [N, T, D], num_words [N], sentence
        [N, D]) (see :class:`GLoRIATextEncoder`)."""
        tokens = self.tokenize(texts, max_length)
        cls_id = getattr(self.tokenizer, 'cls_token_id', None)
        if cls_id is None or not bool((tokens['input_ids'][:, 0] == cls_id).all()):
            raise ValueError('GLoRIA expects BERT-style tokens that start with [CLS]; check the '
                             'tokenizer of the text encoder.')
        return self.text_encoder(tokens['input_ids'], tokens['attention_mask'], self.is_subword)

    @staticmethod
    def word_mask(num_words: torch.Tensor, length: int, include_cls: bool) -> torch.Tensor:
        """[N, T] bool mask of the words used (Eq. W4).

        Word positions are ``0 = [CLS], 1..n = words, n + 1 = [SEP]`` with
        ``n = num_words - 2``. Official training: ``0..n`` (``cap_len = n + 1``, ``[CLS]``
        kept, ``[SEP]`` excluded); without ``[CLS]``: ``1..n``. A text without any word keeps
        ``[CLS]`` so that its score is defined.
        """
        pos = torch.arange(length, device=num_words.device)[None, :]
        mask = pos < (num_words - 1)[:, None]
        if not include_cls:
            mask = mask & (pos >= 1)
        empty = ~mask.any(1)
        if bool(empty.any()):
            mask = mask.clone()
            mask[empty, 0] = True
        return mask

    # ------------------------------------------------------------------ train
    def loss(self, images: torch.Tensor, data_samples: list,
             reports: list) -> Dict[str, torch.Tensor]:
        """Eq. T1 on a batch (docs/architecture.md, section 3)."""
        captions = [self.training_caption(t) for t in self.report_texts(reports)]
        img = self.image_encoder(images)
        txt = self.encode_text(captions, self.max_text_length)
        batch = gather_pair_batch(data_samples, reports, dict(embed=img['global_embed']),
                                  dict(embed=txt['sentence']), gather=self.gather)
        temp3, extra = None, {}
        if self.learnable_temp3:
            with torch.no_grad():
                self.log_temp3.clamp_(max=math.log(self.max_temp3))
            temp3 = self.log_temp3.exp()
            extra['temp3'] = temp3.detach()
        g = self.global_loss(batch.images['embed'], batch.reports['embed'], batch.targets,
                             temp3=temp3)
        mask = self.word_mask(txt['num_words'], txt['words'].shape[1], self.train_include_cls)
        loc = self.local_loss(img['local_embed'], txt['words'], mask, batch.local_targets,
                              temp3=temp3)
        return dict(loss_global=self.global_loss_weight * g['loss'],
                    loss_local=self.local_loss_weight * loc['loss'],
                    global_i2t=g['loss_i2t'], global_t2i=g['loss_t2i'],
                    local_i2t=loc['loss_i2t'], local_t2i=loc['loss_t2i'],
                    **collapse_diagnostics(img['global_embed'], txt['sentence']), **extra)

    # -------------------------------------------------------------- interface
    def extract_image(self, images: torch.Tensor) -> Dict[str, torch.Tensor]:
        feats = self.image_encoder(images)
        local = feats['local_embed']
        return dict(embed=F.normalize(feats['global_embed'], dim=-1),
                    patch_embed=F.normalize(local, dim=-1), patch_norm=local.norm(dim=-1),
                    grid=feats['grid'], probe=feats['global'])

    def extract_text(self, texts: Sequence[str], kind: str = 'report',
                     evidence=None) -> Dict[str, torch.Tensor]:
        """Cleaned texts (all sentences) -> dict(embed, word_embed, word_mask).

        GLoRIA encodes the text itself; ``evidence`` is not used.
        """
        if kind not in ('report', 'phrase'):
            raise ValueError(f'kind must be "report" or "phrase", got {kind!r}')
        if texts is None:
            raise ValueError('GLoRIA.extract_text needs the texts (it does not use evidence).')
        cleaned = [gloria_clean_text(t, self.drop_section_headers) for t in texts]
        max_length = self.max_text_length if kind == 'report' else self.max_phrase_length
        out = self.encode_text(cleaned, max_length)
        mask = self.word_mask(out['num_words'], out['words'].shape[1],
                              self.similarity_include_cls)
        return dict(embed=F.normalize(out['sentence'], dim=-1), word_embed=out['words'],
                    word_mask=mask)

    def similarity(self, img_feats: Dict[str, torch.Tensor],
                   txt_feats: Dict[str, torch.Tensor]) -> torch.Tensor:
        """[N_img, N_txt] official global + local score (Eq. S1), chunked over images and
        texts (memory bounded by ``similarity_max_elements``)."""
        glob = F.normalize(img_feats['embed'].float(), dim=-1) @ F.normalize(
            txt_feats['embed'].float(), dim=-1).t()
        if self.similarity_mode == 'global':
            return glob
        if 'word_embed' not in txt_feats:
            if not self._warned_global_only:
                print_log('GLoRIA.similarity: the text features carry no word features (e.g. '
                          'mean_embedding prompt aggregation); using the global cosine only.',
                          logger='current')
                self._warned_global_only = True
            return glob
        if 'patch_norm' not in img_feats:
            raise KeyError('GLoRIA.similarity needs `patch_embed` and `patch_norm` of the '
                           'images (keep them in the metric\'s feat_keys).')
        regions = img_feats['patch_embed'].float() * img_feats['patch_norm'].float()[..., None]
        local = chunked_local_scores(
            regions, txt_feats['word_embed'], txt_feats['word_mask'],
            max_elements=self.similarity_max_elements, temp1=self.temp1, temp2=self.temp2,
            variant=self.variant, word_reduce=self.similarity_word_reduce)
        if self.similarity_mode == 'local':
            return local
        return (local + glob) / 2


@torch.no_grad()
def mean_pairwise_cosine(x: torch.Tensor) -> torch.Tensor:
    """Mean cosine over the distinct pairs of the rows of ``x`` [N, D] (1 = one vector)."""
    n = x.shape[0]
    if n < 2:
        return x.new_zeros(()).float()
    z = F.normalize(x.detach().float(), dim=-1)
    total = z.sum(0).pow(2).sum() - n  # sum over i != j of z_i . z_j
    return total / (n * (n - 1))


def collapse_diagnostics(image_embed: torch.Tensor, text_embed: torch.Tensor) -> dict:
    """Logged with the loss terms (no gradient, not summed into the loss): mean pairwise
    cosine of the batch's global image embeddings (``img_cos``) and sentence embeddings
    (``txt_cos``); a value near 1 means the embeddings collapsed onto one direction."""
    return dict(img_cos=mean_pairwise_cosine(image_embed),
                txt_cos=mean_pairwise_cosine(text_embed))


def _with_defaults(cfg: dict, **defaults) -> dict:
    cfg = dict(cfg)
    for key, value in defaults.items():
        cfg.setdefault(key, value)
    return cfg


def _tokenizer_of(text_encoder: dict) -> dict:
    path = dict(text_encoder.get('encoder') or {}).get('name_or_path')
    if path is None:
        raise ValueError('GLoRIA: a text encoder built from `config` (random init) needs an '
                         'explicit `tokenizer` (e.g. dict(type="HFTokenizer", vocab_file=...)).')
    return dict(type='HFTokenizer', name_or_path=path)
