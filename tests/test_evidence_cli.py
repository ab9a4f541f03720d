"""tools/extract_evidence.py: report files, mmengine configs through the DATASETS registry."""
import csv
import importlib.util
import json
import os
import shlex

import pytest
from mmengine.dataset import BaseDataset

from lgdea.evidence import (DataUseError, EvidenceCache, EvidenceMissingError, ensure_evidence,
                            load_evidence, read_reports)
from lgdea.evidence.testing import OpenAIStubServer
from lgdea.registry import DATASETS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_spec = importlib.util.spec_from_file_location(
    'extract_evidence_cli', os.path.join(REPO, 'tools', 'extract_evidence.py'))
cli = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cli)

SYNTHETIC = ['Small left pleural effusion. No pneumothorax.', 'Mild cardiomegaly.',
             'Clear lungs.', 'Endotracheal tube in place. Right basilar atelectasis.', '']


@DATASETS.register_module(force=True)
class EvidenceCLITestReports(BaseDataset):
    """A tiny report dataset for the CLI test (records with a ``report`` key)."""

    credentialed = False

    def __init__(self, offset=0, n=None, credentialed=False, pipeline=(), **kwargs):
        self.offset = offset
        self.n = len(SYNTHETIC) if n is None else n
        self.credentialed = credentialed
        super().__init__(pipeline=list(pipeline), lazy_init=True, serialize_data=False, **kwargs)

    def load_data_list(self):
        return [dict(study_id=str(i), report=SYNTHETIC[(i + self.offset) % len(SYNTHETIC)] or None)
                for i in range(self.n)]


def write_config(tmp_path, cache_dir, credentialed=False, extractor=None):
    cfg = tmp_path / 'evidence_cfg.py'
    ds = ("dict(type='EvidenceCLITestReports', offset={off}, credentialed={cred}, "
          "pipeline=[dict(type='TransformThatDoesNotExist')])")
    cfg.write_text(
        f"train_dataloader = dict(batch_size=2, dataset={ds.format(off=0, cred=credentialed)})\n"
        f"val_dataloader = dict(batch_size=2, dataset={ds.format(off=1, cred=False)})\n"
        f"evidence = dict(extractor={extractor or dict(type='rule')!r}, "
        f"cache_dir={cache_dir!r})\n")
    return str(cfg)


def test_reports_jsonl_iu_and_csv(tmp_path, capsys):
    jsonl = tmp_path / 'r.jsonl'
    jsonl.write_text('\n'.join(json.dumps(dict(id=str(i), report=t)) for i, t in
                               enumerate(SYNTHETIC)) + '\n')
    iu = tmp_path / 'iu.jsonl'
    iu.write_text(json.dumps(dict(id='CXR-x', findings='Mild  cardiomegaly.',
                                  impression='No acute disease.')) + '\n')
    table = tmp_path / 'r.csv'
    with open(table, 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=['id', 'report'])
        w.writeheader()
        w.writerows(dict(id=i, report=t) for i, t in enumerate(SYNTHETIC))
    cache = str(tmp_path / 'cache')
    assert cli.main(['--reports', str(jsonl), '--cache-dir', cache, '--no-progress']) == 0
    out = capsys.readouterr().out
    assert '4 reports (1 records without report text)' in out and 'done 4' in out
    assert cli.main(['--reports', str(table), '--cache-dir', cache, '--no-progress']) == 0
    assert 'cached 4 | done 0' in capsys.readouterr().out  # same texts, nothing redone
    assert cli.main(['--reports', str(iu), '--cache-dir', cache, '--no-progress']) == 0
    # the IU record form hashes to the dataset's report text (sections joined by a space)
    assert read_reports(str(iu))[0] == [('CXR-x', 'Mild cardiomegaly. No acute disease.')]
    assert load_evidence(['Mild cardiomegaly. No acute disease.'], 'rule', cache) == \
        [['mild cardiomegaly']]
    assert load_evidence(SYNTHETIC[:4], 'rule', cache)[3] == ['right basilar atelectasis']


def test_bad_inputs_have_clear_errors(tmp_path):
    bad = tmp_path / 'bad.jsonl'
    bad.write_text('{"id": 1, "text": "ok"}\nnot json\n')
    with pytest.raises(ValueError, match='line 2 is not valid JSON'):
        read_reports(str(bad))
    nokey = tmp_path / 'nokey.jsonl'
    nokey.write_text('{"id": 1, "body": "x"}\n')
    with pytest.raises(ValueError, match='needs a "report"'):
        read_reports(str(nokey))
    with pytest.raises(FileNotFoundError, match='no such file'):
        read_reports(str(tmp_path / 'missing.jsonl'))
    with pytest.raises(SystemExit):
        cli.main([])  # neither config nor --reports
    with pytest.raises(SystemExit, match='only apply to --extractor llm'):
        cli.main(['--reports', str(bad), '--model', 'x', '--cache-dir', str(tmp_path)])
    empty = tmp_path / 'empty.jsonl'
    empty.write_text('{"id": 1, "report": "  "}\n')
    with pytest.raises(SystemExit, match=r'empty\.jsonl holds no report with text \(1 records '
                                         r'without report text\)'):
        cli.main(['--reports', str(empty), '--cache-dir', str(tmp_path)])


def test_config_datasets_through_registry(tmp_path, capsys):
    cache = str(tmp_path / 'cache')
    cfg = write_config(tmp_path, cache, extractor=dict(type='rule', policy=dict(
        keep_devices=True)))
    assert cli.main([cfg, '--dataset-key', 'train_dataloader.dataset', '--dataset-key',
                     'val_dataloader.dataset', '--no-progress']) == 0
    out = capsys.readouterr().out
    assert ('train_dataloader.dataset: EvidenceCLITestReports -> 4 reports (4 distinct), '
            '0 image-only records, 1 records without report text') in out
    # the config's evidence.extractor and evidence.cache_dir were used
    phrases = load_evidence(SYNTHETIC[:4], dict(type='rule', policy=dict(keep_devices=True)),
                            cache)
    assert phrases[3] == ['endotracheal tube', 'right basilar atelectasis']
    with pytest.raises(KeyError, match='no key'):
        cli.main([cfg, '--dataset-key', 'test_dataloader.dataset'])
    # --cfg-options reaches the dataset config
    other = str(tmp_path / 'cache2')
    assert cli.main([cfg, '--cfg-options', 'train_dataloader.dataset.n=2',
                     '--cache-dir', other, '--no-progress']) == 0
    out = capsys.readouterr().out
    assert 'EvidenceCLITestReports -> 2 reports' in out and 'done 2' in out


def test_credentialed_dataset_refuses_remote_endpoint(tmp_path):
    cfg = write_config(tmp_path, str(tmp_path / 'cache'), credentialed=True)
    args = [cfg, '--extractor', 'llm', '--backend', 'openai', '--model', 'gpt-x',
            '--base-url', 'https://llm.example.com/v1', '--no-progress']
    with pytest.raises(DataUseError, match='non-loopback'):
        cli.main(args)


def test_printed_command_fills_the_cache(tmp_path, monkeypatch):
    pytest.importorskip('langchain_openai')
    monkeypatch.chdir(REPO)
    texts = [t for t in SYNTHETIC if t]
    with OpenAIStubServer() as server:
        cfg = dict(type='llm', backend='openai', model='stub', base_url=server.url,
                   concurrency=2, policy=dict(keep_devices=True))
        with pytest.raises(EvidenceMissingError) as err:
            ensure_evidence(texts, cfg, str(tmp_path), credentialed=True)
        cmd = str(err.value).split('Extract them first with:\n  ')[1].splitlines()[0]
        argv = shlex.split(cmd)
        assert argv[:2] == ['python', 'tools/extract_evidence.py']
        assert cli.main(argv[2:] + ['--no-progress']) == 0
        phrases = ensure_evidence(texts, cfg, str(tmp_path), credentialed=True)
    assert phrases[1] == ['mild cardiomegaly']
    assert 'endotracheal tube' in phrases[3]
    cache = EvidenceCache(str(tmp_path), __import__('lgdea.evidence', fromlist=['x'])
                          .build_extractor(cfg))
    assert len(cache) == len(texts)


MESSY = ['Small left pleural effusion.\n', 'Mild  cardiomegaly.',
         'Heart\tsize is normal.\tNo pneumothorax.',
         'Right basilar atelectasis.\r\nNo effusion.\r\n']


def _generic_reports(tmp_path, texts):
    from lgdea.datasets import GenericVLDataset
    ann = tmp_path / 'ann.jsonl'
    ann.write_text(''.join(json.dumps({'report': t, 'study_id': f's{i}'}) + '\n'
                           for i, t in enumerate(texts)))
    ds = GenericVLDataset(data_root=str(tmp_path), ann_file='ann.jsonl')
    return [ds.get_data_info(i)['report'] for i in range(len(ds))]


def test_cli_extraction_is_found_by_the_dataset_whatever_the_whitespace(tmp_path):
    pytest.importorskip('langchain_openai')
    reports = tmp_path / 'reports.jsonl'
    reports.write_text(''.join(json.dumps({'id': i, 'report': t}) + '\n'
                               for i, t in enumerate(MESSY)))
    dataset_texts = _generic_reports(tmp_path, MESSY)
    assert dataset_texts[1] == 'Mild cardiomegaly.'  # the dataset collapses whitespace
    cache = str(tmp_path / 'cache')
    with OpenAIStubServer() as server:
        cfg = dict(type='llm', backend='openai', model='stub', base_url=server.url)
        assert cli.main(['--reports', str(reports), '--extractor', 'llm', '--backend', 'openai',
                         '--model', 'stub', '--base-url', server.url, '--cache-dir', cache,
                         '--no-progress']) == 0
        n_requests = server.n_requests
        phrases = ensure_evidence(dataset_texts, cfg, cache)  # raised EvidenceMissingError
        assert load_evidence(MESSY, cfg, cache) == phrases  # the raw texts find the same keys
        assert server.n_requests == n_requests == len(MESSY)
    assert phrases[1] == ['mild cardiomegaly']


def test_extractors_see_and_key_the_normalised_text(tmp_path):
    """The model is asked about the normalised text (so a CLI run and a dataset's offline
    extraction, which also extracts the normalised text, answer the same key alike) and every
    record is keyed by ``report_key``, whatever text it was made from."""
    from lgdea.evidence import LLMEvidenceExtractor, report_key, run_extraction
    from lgdea.evidence.testing import ScriptedChatModel
    model = ScriptedChatModel(responder=lambda report, i: '{"findings": []}')
    ext = LLMEvidenceExtractor(chat_model=model, max_retries=0)
    run_extraction(MESSY, ext, str(tmp_path), show_progress=False)
    assert sorted(model.calls) == sorted(' '.join(t.split()) for t in MESSY)
    for t in MESSY:
        assert ext.make_record(t, status='ok', findings=[]).text_sha256 == report_key(t)
        assert report_key(t) == report_key(' '.join(t.split()))


def test_old_raw_text_keys_are_found_and_rekeyed(tmp_path):
    from lgdea.evidence import LLMEvidenceExtractor, run_extraction, sha256_text
    from lgdea.evidence.testing import ScriptedChatModel

    def never(report, i):
        raise AssertionError('a re-keyed record must not be extracted again')

    ext = LLMEvidenceExtractor(chat_model=ScriptedChatModel(responder=never), max_retries=0)
    old = [ext.make_record(t, status='ok', findings=[]).model_copy(
        update=dict(text_sha256=sha256_text(t))) for t in MESSY]  # the pre-normalisation key
    EvidenceCache(str(tmp_path), ext).append(old)
    dataset_texts = _generic_reports(tmp_path, MESSY)
    assert len(load_evidence(MESSY, ext, str(tmp_path))) == 4  # found under the old key
    with pytest.raises(EvidenceMissingError, match='re-run that extraction command'):
        load_evidence(dataset_texts, ext, str(tmp_path))
    summary = run_extraction(MESSY, ext, str(tmp_path), show_progress=False)
    assert (summary.cached, summary.rekeyed, summary.done) == (4, 4, 0)
    assert 're-keyed 4' in str(summary)
    assert load_evidence(dataset_texts, ext, str(tmp_path)) == [
        ['no acute cardiopulmonary abnormality']] * 4


@pytest.mark.parametrize('name', ['reports.jsonl', 'reports.csv'])
def test_non_utf8_report_file_names_file_line_and_fix(tmp_path, name):
    path = tmp_path / name
    head = b'id,report\n1,Mild cardiomegaly.\n' if name.endswith('.csv') else \
        b'{"id": 1, "report": "Mild cardiomegaly."}\n'
    bad = b'2,Small effusion at the left base \xe9.\n' if name.endswith('.csv') else \
        b'{"id": 2, "report": "Small effusion \xe9."}\n'
    path.write_bytes(head + bad)
    line = 3 if name.endswith('.csv') else 2  # the file's line (a CSV's header is line 1)
    with pytest.raises(ValueError, match=rf'line {line}, column \d+: byte 0xe9 is not UTF-8'
                       ) as err:
        read_reports(str(path))
    assert str(path) in str(err.value) and 'iconv' in str(err.value)
    with pytest.raises(SystemExit, match=f'line {line}, column'):
        cli.main(['--reports', str(path), '--cache-dir', str(tmp_path / 'c'), '--no-progress'])
    path.write_bytes(b'\xef\xbb\xbf' + head)  # a UTF-8 byte-order mark is fine
    assert read_reports(str(path))[0] == [('1', 'Mild cardiomegaly.')]


@DATASETS.register_module(force=True)
class EvidenceCLIPairingItems(BaseDataset):
    """Image, pair and report items like ``LimitedPairingDataset`` (plus one empty report)."""

    def __init__(self, pipeline=(), **kwargs):
        super().__init__(pipeline=list(pipeline), lazy_init=True, serialize_data=False, **kwargs)

    def load_data_list(self):
        return [dict(kind='image', img_path='a.png', study_id='1'),
                dict(kind='image', img_path='b.png', study_id='2'),
                dict(kind='image', img_path='c.png', study_id='3'),
                dict(kind='pair', img_path='a.png', study_id='1', report='Mild cardiomegaly.'),
                dict(kind='report', study_id='1', report='Mild cardiomegaly.'),
                dict(kind='report', study_id='4', report='Clear lungs.'),
                dict(kind='report', study_id='5', report='  ')]


def test_summary_counts_image_items_apart_from_missing_reports(tmp_path, capsys):
    cfg = tmp_path / 'pairing_cfg.py'
    cfg.write_text("train_dataloader = dict(dataset=dict(type='EvidenceCLIPairingItems'))\n")
    assert cli.main([str(cfg), '--cache-dir', str(tmp_path / 'c'), '--no-progress']) == 0
    out = capsys.readouterr().out
    assert ('EvidenceCLIPairingItems -> 3 reports (2 distinct), 3 image-only records, '
            '1 records without report text') in out
