"""Extract evidence phrases E(R) (paper Eq. 2) into the persistent evidence cache.

Inputs: a report file (``--reports FILE``: JSONL with ``id``/``report``, IU X-ray records with
``findings``/``impression``, or a CSV with a ``report`` column) or an mmengine CONFIG whose
datasets (``--dataset-key``, default ``train_dataloader.dataset``; repeatable) are built
through ``lgdea.registry.DATASETS`` and read for their ``report`` key.

Examples:
    # offline rule extractor (default)
    python tools/extract_evidence.py configs/lgdea/some_config.py --cache-dir data/evidence
    # a local OpenAI-compatible server (vLLM / llama.cpp) on loopback
    python tools/extract_evidence.py --reports reports.jsonl --extractor llm \\
        --backend openai --base-url http://127.0.0.1:8000/v1 --model Qwen2.5-7B-Instruct \\
        --concurrency 8 --cache-dir data/evidence
    # Ollama
    python tools/extract_evidence.py CONFIG --extractor llm --backend ollama --model llama3.1

Interrupt it at any time: finished reports are in the cache and a re-run continues with the
rest. Failed reports are recorded and retried with ``--retry-failed``. Credentialed data
(MIMIC-CXR, CheXpert, MS-CXR) is never sent to a non-loopback endpoint unless
``--allow-remote`` is given (and then with a warning).
"""
import argparse
import copy
import json
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

DEFAULT_DATASET_KEY = 'train_dataloader.dataset'


def parse_args(argv=None):
    from mmengine.config import DictAction
    p = argparse.ArgumentParser(description='Extract evidence phrases into the evidence cache.',
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split('Examples:')[1])
    p.add_argument('config', nargs='?', help='mmengine config whose datasets give the reports')
    p.add_argument('--reports', help='JSONL / CSV report file (instead of a config)')
    p.add_argument('--dataset-key', action='append', default=None,
                   help=f'dotted config key of a dataset (repeatable; default '
                        f'{DEFAULT_DATASET_KEY})')
    p.add_argument('--extractor', choices=['rule', 'llm'], default=None,
                   help='extractor (default: the config\'s evidence.extractor, else rule)')
    p.add_argument('--extractor-cfg', default=None,
                   help='JSON object of extractor arguments (e.g. \'{"policy": '
                        '{"keep_uncertain": false}}\')')
    p.add_argument('--backend', choices=['openai', 'ollama', 'hf'], default=None)
    p.add_argument('--model', default=None, help='model name on the server / local path (hf)')
    p.add_argument('--base-url', default=None, help='server URL (openai-compatible or ollama)')
    p.add_argument('--gguf-file', default=None, help='GGUF file inside --model (hf)')
    p.add_argument('--api-key-env', default=None,
                   help='environment variable holding the API key (default OPENAI_API_KEY)')
    p.add_argument('--prompt-version', default=None, help='prompt module (default evidence_v1)')
    p.add_argument('--concurrency', type=int, default=None, help='requests in flight (llm)')
    p.add_argument('--max-retries', type=int, default=None)
    p.add_argument('--timeout', type=float, default=None, help='seconds per request (llm)')
    p.add_argument('--cache-dir', default=None,
                   help='evidence cache directory (default: the config\'s evidence.cache_dir, '
                        'else data/evidence_cache)')
    p.add_argument('--credentialed', action='store_true',
                   help='the reports are credentialed data (MIMIC-CXR, CheXpert, MS-CXR)')
    p.add_argument('--allow-remote', action='store_true',
                   help='allow a non-loopback LLM endpoint for credentialed data (warns)')
    p.add_argument('--retry-failed', action='store_true',
                   help='extract again the reports recorded as failed')
    p.add_argument('--limit', type=int, default=None, help='extract at most N missing reports')
    p.add_argument('--no-progress', action='store_true', help='no progress bar')
    p.add_argument('--cfg-options', nargs='+', action=DictAction, default=None,
                   help='override config keys, key=value (mmengine DictAction)')
    args = p.parse_args(argv)
    if bool(args.config) == bool(args.reports):
        p.error('give either a CONFIG or --reports FILE (exactly one)')
    if args.dataset_key and not args.config:
        p.error('--dataset-key needs a CONFIG')
    return args


def _get_dotted(cfg, key: str):
    node = cfg
    for part in key.split('.'):
        if isinstance(node, (list, tuple)) and part.isdigit():
            node = node[int(part)]
        elif hasattr(node, 'get') and part in node:
            node = node[part]
        else:
            raise KeyError(f'the config has no key {key!r} (missing part {part!r}); pass the '
                           f'dataset with --dataset-key')
    return node


def _without_pipelines(ds_cfg):
    """A copy of a dataset config with every ``pipeline`` emptied (only records are read)."""
    if isinstance(ds_cfg, dict):
        out = {k: _without_pipelines(v) for k, v in ds_cfg.items()}
        if 'pipeline' in out:
            out['pipeline'] = []
        return out
    if isinstance(ds_cfg, (list, tuple)):
        return type(ds_cfg)(_without_pipelines(v) for v in ds_cfg)
    return ds_cfg


def _records(dataset):
    if hasattr(dataset, 'full_init'):
        dataset.full_init()
    getter = getattr(dataset, 'get_data_info', None)
    for i in range(len(dataset)):
        yield getter(i) if getter is not None else dataset[i]


def dataset_is_credentialed(dataset, ds_cfg) -> bool:
    """A dataset is credentialed when it says so (``credentialed`` attribute or metainfo key)
    or its type / data root names MIMIC-CXR, CheXpert or MS-CXR."""
    from lgdea.evidence.guardrail import is_credentialed_name
    flag = getattr(dataset, 'credentialed', None)
    if flag is None:
        flag = (getattr(dataset, 'metainfo', None) or {}).get('credentialed')
    if flag is not None:
        return bool(flag)
    names = [str(ds_cfg.get('type', '')), str(ds_cfg.get('data_root', '')),
             type(dataset).__name__] if isinstance(ds_cfg, dict) else [type(dataset).__name__]
    return any(is_credentialed_name(n) for n in names)


def is_image_only(rec) -> bool:
    """True for a record that is an image without report text: an image item of a
    limited-pairing dataset (``kind='image'``; its study's report is a separate item) or an
    image record (``img_path``) whose report is missing or blank."""
    if not isinstance(rec, dict):
        return False
    report = rec.get('report')
    if isinstance(report, str) and report.strip():
        return False
    return rec.get('kind') == 'image' or rec.get('img_path') is not None


def texts_from_config(config_path: str, dataset_keys, cfg_options=None):
    """``(texts, credentialed, cfg)``: the ``report`` texts of the configured datasets."""
    from mmengine.config import Config

    from lgdea.registry import DATASETS
    from lgdea.utils import register_all_modules

    cfg = Config.fromfile(config_path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    register_all_modules()
    texts, credentialed = [], False
    for key in dataset_keys:
        ds_cfg = _get_dotted(cfg, key)
        ds_cfg = _without_pipelines(copy.deepcopy(ds_cfg.to_dict() if hasattr(ds_cfg, 'to_dict')
                                                  else ds_cfg))
        dataset = DATASETS.build(ds_cfg)
        n_before, n_empty, n_image = len(texts), 0, 0
        for rec in _records(dataset):
            report = rec.get('report') if isinstance(rec, dict) else None
            if isinstance(report, str) and report.strip():
                texts.append(report)
            elif is_image_only(rec):
                n_image += 1
            else:
                n_empty += 1
        cred = dataset_is_credentialed(dataset, ds_cfg)
        credentialed = credentialed or cred
        print(f'{key}: {type(dataset).__name__} -> {len(texts) - n_before} reports '
              f'({len(set(texts[n_before:]))} distinct), {n_image} image-only records, '
              f'{n_empty} records without report text{" [credentialed]" if cred else ""}')
    return texts, credentialed, cfg


def extractor_config(args, cfg=None) -> dict:
    """The extractor config: the config file's ``evidence.extractor`` (if any), then
    ``--extractor``, ``--extractor-cfg`` and the other flags on top."""
    base = {}
    if cfg is not None and cfg.get('evidence') and cfg.evidence.get('extractor'):
        base = dict(copy.deepcopy(cfg.evidence.extractor))
    if args.extractor and base.get('type') not in (args.extractor, None) and \
            base.get('type') != {'rule': 'RuleEvidenceExtractor',
                                 'llm': 'LLMEvidenceExtractor'}[args.extractor]:
        base = {}
    if args.extractor:
        base['type'] = args.extractor
    base.setdefault('type', 'rule')
    if args.extractor_cfg:
        try:
            extra = json.loads(args.extractor_cfg)
        except json.JSONDecodeError as e:
            raise SystemExit(f'--extractor-cfg is not valid JSON: {e}')
        if not isinstance(extra, dict):
            raise SystemExit('--extractor-cfg must be a JSON object')
        base.update(extra)
    flags = dict(backend=args.backend, model=args.model, base_url=args.base_url,
                 gguf_file=args.gguf_file, api_key_env=args.api_key_env,
                 prompt_version=args.prompt_version, concurrency=args.concurrency,
                 max_retries=args.max_retries, timeout=args.timeout)
    llm_only = {k: v for k, v in flags.items() if v is not None}
    if llm_only and base['type'] in ('rule', 'RuleEvidenceExtractor'):
        raise SystemExit(f'{sorted("--" + k.replace("_", "-") for k in llm_only)} only apply to '
                         f'--extractor llm')
    base.update(llm_only)
    return base


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
    from lgdea.evidence import build_extractor, read_reports, run_extraction

    cfg = None
    if args.config:
        keys = args.dataset_key or [DEFAULT_DATASET_KEY]
        texts, credentialed, cfg = texts_from_config(args.config, keys, args.cfg_options)
    else:
        extractor_config(args)  # flag errors before reading the inputs
        try:
            pairs, n_empty = read_reports(args.reports)
        except (ValueError, FileNotFoundError) as e:
            raise SystemExit(f'extract_evidence.py: {e}') from None
        texts = [t for _, t in pairs]
        if not texts:
            raise SystemExit(f'extract_evidence.py: {args.reports} holds no report with text '
                             f'({n_empty} records without report text); nothing to extract. '
                             'Check the file and its "report" / "text" field.')
        credentialed = False
        print(f'{args.reports}: {len(texts)} reports ({n_empty} records without report text)')
    credentialed = credentialed or args.credentialed
    cache_dir = args.cache_dir
    if cache_dir is None and cfg is not None and cfg.get('evidence'):
        cache_dir = cfg.evidence.get('cache_dir')
    cache_dir = cache_dir or os.path.join('data', 'evidence_cache')

    extractor = build_extractor(extractor_config(args, cfg))
    print('extractor:', json.dumps(extractor.describe(), sort_keys=True, default=str))
    summary = run_extraction(texts, extractor, cache_dir, credentialed=credentialed,
                             allow_remote=args.allow_remote, retry_failed=args.retry_failed,
                             show_progress=not args.no_progress, limit=args.limit)
    print(summary)
    if summary.failed or summary.skipped_failed:
        print(f'{summary.failed + summary.skipped_failed} reports have failed extractions; '
              f'run again with --retry-failed to retry them.')
    return 0


if __name__ == '__main__':
    sys.exit(main())
