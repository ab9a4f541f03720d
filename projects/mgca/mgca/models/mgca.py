"""MGCA: multi-granularity cross-modal alignment (Wang et al., NeurIPS 2022), as the official code.

docs/baselines.md. The three losses (Eq. numbers of this package):

- ITA (instance-wise): ``L_ITA = CE(U^I U^T^T / tau, Y) + CE(U^T U^I^T / tau, Y^T)``, tau = 0.07,
  the sum of both directions, computed with the shared ``ContrastiveLoss`` (Eq. 1 with
  ``direction_reduction='sum'``); ``Y`` = the batch's pair targets, the identity when every
  study appears once. No cross-rank gather by default (official; ``gather_ita=True``).
- TCA (token-wise): :class:`TokenAlignmentLoss`, word and patch sides, [CLS]-attention token
  weights clipped per sample to their 10th-90th percentile.
- CPA (prototype): :class:`PrototypeAlignmentLoss`, 500 prototypes, Sinkhorn codes.

``L = lambda_ita L_ITA + lambda_tca L_TCA + lambda_cpa L_CPA``. The official launcher
(``cli_main``) trains with 1 / 1 / 1, the default here; the official class defaults are
1 / 0.7 / 0.5 (``loss_weights=dict(ita=1.0, tca=0.7, cpa=0.5)``).
"""
import math
from typing import Dict, Optional, Sequence

import torch
import torch.nn.functional as F

from lgdea.models.base import BaseVLPModel
from lgdea.models.clip import _tokenizer_of
from lgdea.models.utils.frozen_cache import FrozenTextCache
from lgdea.models.utils.pairing import gather_pair_batch
from lgdea.registry import MODELS
from .utils.percentile_clip import percentile_clip
from .utils.vit_attention import ViTCLSAttentionRecorder
from .utils.word_aggregation import aggregate_subwords, continuation_lookup

__all__ = ['MGCA']

_LOSS_NAMES = ('ita', 'tca', 'cpa')


@MODELS.register_module()
class MGCA(BaseVLPModel):
    """MGCA with the shared inference interface.

    Encoders: image ``f_I(x) -> (g^I [C_I], l^I [P, C_I'])`` (ViT-B/16: CLS and patch tokens;
    ResNet-50: pooled layer4 and layer3 tokens), text ``f_T(r) -> (g^T, token features)``
    (BERT-style, the official run keeps the first 6 of 12 Bio_ClinicalBERT layers:
    ``text_encoder.num_layers=6``). Sub-word tokens are summed into words
    (:func:`aggregate_subwords`). Heads (``embed_dims`` = 128, hidden 2048):
    ``u^I = norm(G_I(g^I))``, ``p = norm(L_I(l^I))``, ``u^T = norm(G_T(g^T))``,
    ``w = norm(L_T(words))`` (:class:`MGCAGlobalEmbedding` / :class:`MGCALocalEmbedding`).

    Inference outputs (docs/method.md "Inference outputs"): ``extract_image`` -> ``embed`` = ``u^I``,
    ``patch_embed`` = ``p`` (for the shared BioViL-style grounding map), ``grid``, ``probe`` =
    the un-projected ``g^I`` (linear-probe feature); ``extract_text`` -> ``embed`` = ``u^T``;
    the default cosine ``similarity``.

    Batches: MGCA learns from pairs only. Every image ``i`` must be paired with report ``i``
    (``LimitedPairingDataset(include_unpaired=False)`` + ``vl_collate``); anything else is an
    error.

    Args:
        image_encoder: config of a ``CXRImageEncoder`` (ViT, ``out_type='raw'``), a
            ``TimmImageEncoder`` or a :class:`CNNLocalGlobalEncoder` (ResNet-50).
        text_encoder: config of an ``HFTextEncoder``. Attention weights are needed, so it is
            built with ``attn_implementation='eager'`` (set when absent; any other value is an
            error).
        embed_dims: joint-space width ``D`` (128).
        hidden_dims: hidden width of the four heads (2048).
        ita_temperature: tau of ITA (0.07, fixed).
        ita_loss: config of the shared ``ContrastiveLoss`` (directions summed, official).
        gather_ita: gather the global embeddings across ranks for ITA (default False,
            official; one process: no-op).
        tca_loss: config of :class:`TokenAlignmentLoss` (tau 0.1, bidirectional).
        cpa_loss: config of :class:`PrototypeAlignmentLoss` (500 prototypes, tau 0.2, Sinkhorn
            epsilon 0.05, 3 iterations). ``embed_dims`` is filled in.
        loss_weights: ``dict(ita=, tca=, cpa=)``; default 1 / 1 / 1 (official launcher).
        patch_weights: ``'auto'`` (ViT: [CLS] attention of the last block, recomputed from its
            qkv; CNN: uniform, as the official code), ``'cls_attention'`` or ``'uniform'``.
        normalize_patch_context: ``'auto'`` (official quirk: L2-normalise the patch-side word
            context only for CNN encoders), True or False.
        clip_percentiles: (low, high) percentiles of the token-weight clipping (0.1, 0.9).
        word_attention_shift: reproduce the official off-by-one between word and [CLS]
            attention (docs/baselines.md 2.3); False aligns them.
        text_padding: ``'max_length'`` (official: ``max_text_length - 1`` word slots per
            report, the zero padding slots take part in the word-side softmax denominators and
            in the BatchNorm statistics of the word head; computed exactly, but the encoder
            runs only on the longest report) or ``'longest'`` (word slots up to the longest
            report of the batch: faster heads, not identical to the official loss).
        max_text_length: token cap of a report (112).
        max_phrase_length: token cap of a prompt / grounding phrase.
        tokenizer: TOKENIZER config; default: the text encoder's own tokenizer.
        cache_frozen_text: with a frozen text encoder, remember each report's report feature,
            word features and word weights (everything before the trainable heads) and encode
            every distinct report once per run; the losses are unchanged (within float
            tolerance). About 2x faster demo steps; memory grows with the distinct reports
            (about 0.7 GB for the demo's 8,000).
    """

    def __init__(self,
                 image_encoder: dict,
                 text_encoder: dict,
                 embed_dims: int = 128,
                 hidden_dims: int = 2048,
                 ita_temperature: float = 0.07,
                 ita_loss: Optional[dict] = None,
                 gather_ita: bool = False,
                 tca_loss: Optional[dict] = None,
                 cpa_loss: Optional[dict] = None,
                 loss_weights: Optional[Dict[str, float]] = None,
                 patch_weights: str = 'auto',
                 normalize_patch_context='auto',
                 clip_percentiles: Sequence[float] = (0.1, 0.9),
                 word_attention_shift: bool = True,
                 text_padding: str = 'max_length',
                 max_text_length: int = 112,
                 max_phrase_length: int = 32,
                 tokenizer: Optional[dict] = None,
                 cache_frozen_text: bool = True,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg=None):
        text_encoder = dict(text_encoder)
        impl = text_encoder.setdefault('attn_implementation', 'eager')
        if impl != 'eager':
            raise ValueError(
                f"MGCA: text_encoder.attn_implementation={impl!r}. MGCA weights words by the "
                "text encoder's [CLS] attention, and transformers 5 returns attention weights "
                "only with attn_implementation='eager'; set it to 'eager' (or leave it unset).")
        if tokenizer is None:
            tokenizer = _tokenizer_of(text_encoder)
        super().__init__(tokenizer=tokenizer, max_text_length=max_text_length,
                         data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.image_encoder = MODELS.build(image_encoder)
        self.text_encoder = MODELS.build(text_encoder)
        img_dims = int(self.image_encoder.embed_dims)
        img_local_dims = int(getattr(self.image_encoder, 'local_dims', img_dims))
        txt_dims = int(self.text_encoder.embed_dims)
        head = dict(hidden_dims=hidden_dims, out_dims=embed_dims)
        self.image_global_embed = MODELS.build(dict(type='MGCAGlobalEmbedding', in_dims=img_dims,
                                                    **head))
        self.image_local_embed = MODELS.build(dict(type='MGCALocalEmbedding',
                                                   in_dims=img_local_dims, **head))
        self.text_global_embed = MODELS.build(dict(type='MGCAGlobalEmbedding', in_dims=txt_dims,
                                                   **head))
        self.text_local_embed = MODELS.build(dict(type='MGCALocalEmbedding', in_dims=txt_dims,
                                                  **head))

        self.ita_loss = MODELS.build(ita_loss or dict(type='ContrastiveLoss',
                                                      direction_reduction='sum'))
        self.gather_ita = gather_ita
        self.register_buffer('ita_logit_scale', torch.tensor(math.log(1.0 / ita_temperature)),
                             persistent=False)
        self.tca_loss = MODELS.build(tca_loss or dict(type='TokenAlignmentLoss'))
        cpa_loss = dict(cpa_loss or dict(type='PrototypeAlignmentLoss'))
        cpa_loss.setdefault('embed_dims', embed_dims)
        self.cpa_loss = MODELS.build(cpa_loss)

        weights = dict(ita=1.0, tca=1.0, cpa=1.0)
        if loss_weights is not None:
            unknown = set(loss_weights) - set(_LOSS_NAMES)
            if unknown:
                raise KeyError(f'MGCA.loss_weights: unknown keys {sorted(unknown)}; use '
                               f'{list(_LOSS_NAMES)}')
            weights.update({k: float(v) for k, v in loss_weights.items()})
        self.loss_weights = weights

        is_vit = self._encoder_is_vit()
        if patch_weights == 'auto':
            patch_weights = 'cls_attention' if is_vit else 'uniform'
        if patch_weights not in ('cls_attention', 'uniform'):
            raise ValueError(f"patch_weights must be 'auto', 'cls_attention' or 'uniform', got "
                             f'{patch_weights!r}')
        if patch_weights == 'cls_attention' and not is_vit:
            raise ValueError("patch_weights='cls_attention' needs a ViT image encoder")
        self.patch_weights = patch_weights
        if normalize_patch_context == 'auto':
            normalize_patch_context = not is_vit
        if not isinstance(normalize_patch_context, bool):
            raise ValueError("normalize_patch_context must be 'auto', True or False, got "
                             f'{normalize_patch_context!r}')
        self.normalize_patch_context = normalize_patch_context
        self._attn_recorder = (ViTCLSAttentionRecorder(self._vit_backbone())
                               if patch_weights == 'cls_attention' else None)

        low, high = (float(v) for v in clip_percentiles)
        self.clip_percentiles = (low, high)
        self.word_attention_shift = bool(word_attention_shift)
        if text_padding not in ('max_length', 'longest'):
            raise ValueError(f"text_padding must be 'max_length' or 'longest', got "
                             f'{text_padding!r}')
        self.text_padding = text_padding
        self.max_phrase_length = max_phrase_length
        if self.tokenizer.sep_token_id is None:
            raise ValueError('MGCA needs a WordPiece tokenizer with a [SEP] token')
        self.register_buffer('_is_continuation', continuation_lookup(self.tokenizer),
                             persistent=False)
        self._word_cache = (FrozenTextCache() if cache_frozen_text
                            and getattr(self.text_encoder, 'freeze', False) else None)

    # ----------------------------------------------------------------- encoders
    def _encoder_is_vit(self) -> bool:
        enc = self.image_encoder
        if getattr(enc, 'is_vit', False):
            return True
        model = getattr(enc, 'model', None)  # TimmImageEncoder
        return model is not None and hasattr(model, 'blocks')

    def _vit_backbone(self):
        enc = self.image_encoder
        return enc.backbone if hasattr(enc, 'backbone') else enc.model

    def _image_features(self, images: torch.Tensor, record_attention: bool = False) -> dict:
        if record_attention and self._attn_recorder is not None:
            with self._attn_recorder.recording():
                return self.image_encoder(images)
        return self.image_encoder(images)

    def _report_tokens(self, texts: Sequence[str]) -> Dict[str, torch.Tensor]:
        """Token ids padded to the longest report plus one padding token (capped at
        ``max_text_length``).

        The extra padding token keeps the [SEP] of the longest report inside the range the
        official (shifted) word loop scans, exactly as with ``max_length`` padding; the encoder
        output of the real tokens does not depend on how many masked padding tokens follow.
        """
        enc = self.tokenizer(list(texts), padding='longest', truncation=True,
                             max_length=self.max_text_length, return_tensors='pt')
        ids, mask = enc['input_ids'], enc['attention_mask']
        if ids.shape[1] < self.max_text_length:
            pad_id = self.tokenizer.pad_token_id or 0
            ids = torch.cat([ids, ids.new_full((ids.shape[0], 1), pad_id)], dim=1)
            mask = torch.cat([mask, mask.new_zeros((mask.shape[0], 1))], dim=1)
        return dict(input_ids=ids.to(self.device), attention_mask=mask.to(self.device))

    def encode_report_words(self, texts: Sequence[str]) -> Dict[str, torch.Tensor]:
        """Report feature and word features of the official text path.

        With ``text_padding='max_length'`` the word slots are zero-padded to
        ``max_text_length - 1``, which equals encoding every report padded to
        ``max_text_length`` (the official tokenisation) at the cost of the longest report.

        Returns:
            dict(report [N, C] (the pooled feature, [CLS] for ``pooling='cls'``),
            words [N, W, C], word_weights [N, W] (head-mean [CLS] attention of the last
            layer, summed per word), word_pad_mask [N, W], num_words [N]);
            ``W = max_text_length - 1`` for ``'max_length'``.
        """
        tokens = self._report_tokens(texts)
        if self._word_cache is not None:
            return self._cached_report_words(tokens)
        return self._encode_report_words(tokens)

    def _encode_report_words(self, tokens: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """:meth:`encode_report_words` of tokenised reports, computed."""
        out = self.text_encoder(**tokens, output_attentions=True)
        cls_attention = out['attentions'][-1][:, :, 0, :].float().mean(dim=1)  # [N, T]
        agg = aggregate_subwords(out['tokens'], tokens['input_ids'], cls_attention,
                                 self._is_continuation, self.tokenizer.sep_token_id,
                                 attention_shift=self.word_attention_shift)
        words, weights, pad_mask = agg['words'], agg['weights'], agg['pad_mask']
        extra = self.max_text_length - 1 - words.shape[1]
        if self.text_padding == 'max_length' and extra > 0:
            words = F.pad(words, (0, 0, 0, extra))
            weights = F.pad(weights, (0, extra))
            pad_mask = F.pad(pad_mask, (0, extra), value=True)
        return dict(report=out['pooled'], words=words, word_weights=weights,
                    word_pad_mask=pad_mask, num_words=agg['num_words'])

    @torch.no_grad()
    def _cached_report_words(self, tokens: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """:meth:`encode_report_words` from the frozen-text cache, encoding only unseen
        reports; padded to the word slots the computed path gives this batch."""
        cache = self._word_cache
        ids, mask = tokens['input_ids'], tokens['attention_mask']
        keys = cache.keys(ids, mask)
        missing = cache.missing(keys)
        if missing:
            rows = torch.tensor(missing, device=ids.device)
            sub = dict(input_ids=ids[rows], attention_mask=mask[rows])
            out = self._encode_report_words(sub)
            for j, i in enumerate(missing):
                n = int(out['num_words'][j])
                cache.put(keys[i], report=out['report'][j], words=out['words'][j, :n],
                          word_weights=out['word_weights'][j, :n])
        # word slots of the computed path: T - 1 for T padded tokens, or max_text_length - 1
        slots = ids.shape[1] - 1
        if self.text_padding == 'max_length':
            slots = max(slots, self.max_text_length - 1)
        words, num_words = cache.get_padded(keys, 'words', slots, ids.device)
        weights, _ = cache.get_padded(keys, 'word_weights', slots, ids.device)
        pad_mask = torch.arange(slots, device=ids.device)[None, :] >= num_words[:, None]
        return dict(report=torch.stack(cache.get(keys, 'report')).to(ids.device), words=words,
                    word_weights=weights, word_pad_mask=pad_mask, num_words=num_words)

    # -------------------------------------------------------------------- train
    def loss(self, images: torch.Tensor, data_samples: list,
             reports: list) -> Dict[str, torch.Tensor]:
        """``loss_ita``, ``loss_tca``, ``loss_cpa`` (each already weighted) + diagnostics."""
        _check_aligned_pairs(data_samples, reports)
        feats = self._image_features(images, record_attention=True)
        img_embed = F.normalize(self.image_global_embed(feats['global']), dim=-1)
        patch_embed = F.normalize(self.image_local_embed(feats['local']), dim=-1)
        text = self.encode_report_words(self.report_texts(reports))
        rep_embed = F.normalize(self.text_global_embed(text['report']), dim=-1)
        word_embed = F.normalize(self.text_local_embed(text['words']), dim=-1)

        batch = gather_pair_batch(data_samples, reports, dict(embed=img_embed),
                                  dict(embed=rep_embed), gather=self.gather_ita)
        ita = self.ita_loss(batch.images['embed'], batch.reports['embed'], self.ita_logit_scale,
                            batch.targets)

        low, high = self.clip_percentiles
        with torch.no_grad():
            word_w = text['word_weights']
            word_w = percentile_clip(word_w, word_w != 0, low, high)  # official: non-zero only
            patch_w = None
            if self._attn_recorder is not None:
                patch_w = percentile_clip(self._attn_recorder.patch_attention(), None, low, high)
        tca = self.tca_loss(word_embed, patch_embed, word_w.to(word_embed.dtype),
                            None if patch_w is None else patch_w.to(patch_embed.dtype),
                            text['word_pad_mask'], self.normalize_patch_context)
        cpa = self.cpa_loss(img_embed, rep_embed)

        w = self.loss_weights
        return dict(loss_ita=w['ita'] * ita['loss'],
                    loss_tca=w['tca'] * tca['loss'],
                    loss_cpa=w['cpa'] * cpa['loss'],
                    acc_i2t=ita['acc_i2t'],
                    tca_word=tca['loss_word'].detach(),
                    tca_patch=tca['loss_patch'].detach(),
                    cpa_code_perplexity=cpa['code_perplexity'])

    # ---------------------------------------------------------------- interface
    def extract_image(self, images: torch.Tensor) -> Dict[str, torch.Tensor]:
        feats = self._image_features(images)
        return dict(embed=F.normalize(self.image_global_embed(feats['global']), dim=-1),
                    patch_embed=F.normalize(self.image_local_embed(feats['local']), dim=-1),
                    grid=feats['grid'], probe=feats['global'])

    def extract_text(self, texts: Sequence[str], kind: str = 'report',
                     evidence=None) -> Dict[str, torch.Tensor]:
        if texts is None:
            raise ValueError('MGCA encodes the report / phrase text itself; `texts` is required '
                             '(it does not use evidence phrases).')
        if kind not in ('report', 'phrase'):
            raise ValueError(f"kind must be 'report' or 'phrase', got {kind!r}")
        max_length = self.max_phrase_length if kind == 'phrase' else self.max_text_length
        out = self.text_encoder(**self.tokenize(texts, max_length))
        return dict(embed=F.normalize(self.text_global_embed(out['pooled']), dim=-1))


def _check_aligned_pairs(data_samples: list, reports: list) -> None:
    """MGCA's losses pair image ``i`` with report ``i``; check that the batch is so."""
    if data_samples is None or reports is None or len(data_samples) != len(reports):
        raise ValueError(
            f'MGCA trains on image-report pairs only, but the batch has '
            f'{0 if data_samples is None else len(data_samples)} images and '
            f'{0 if reports is None else len(reports)} reports. Use '
            'LimitedPairingDataset(include_unpaired=False) with vl_collate.')
    for i, (img, rep) in enumerate(zip(data_samples, reports)):
        if (img.get('study_id', None) != rep.get('study_id', None)
                or not img.get('paired', True) or not rep.get('paired', True)):
            raise ValueError(
                f'MGCA: batch item {i} is not an image-report pair (image study '
                f'{img.get("study_id", None)!r}, report study {rep.get("study_id", None)!r}). '
                'MGCA cannot use unpaired items: set include_unpaired=False in '
                'LimitedPairingDataset.')
