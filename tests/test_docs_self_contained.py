"""The repository stands on its own: no reference to files outside it, and every docs path or
relative markdown link in the code, configs and docs names a file that exists."""
import os
import os.path as osp
import re

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..'))
SCANNED = ['lgdea', 'projects', 'configs', 'docs', 'tools', 'benchmarks', 'README.md']
OUTSIDE = re.compile(r'\.\./shared(?!/data)|shared/docs|(?<![\w/])(?:calibration|references)\.md')
DOCS_PATH = re.compile(r'(?<![\w/.])((?:docs|projects/[\w-]+)/[\w/.-]+\.md)')
MD_LINK = re.compile(r'\]\(([^)#\s]+\.md)(?:#[^)]*)?\)')


def _files():
    for top in SCANNED:
        path = osp.join(ROOT, top)
        if osp.isfile(path):
            yield path
            continue
        for dirpath, dirnames, filenames in os.walk(path):
            dirnames[:] = [d for d in dirnames if not d.startswith(('.', '__pycache__'))]
            for name in filenames:
                if name.endswith(('.py', '.md', '.sh', '.txt', '.yaml', '.yml', '.cfg')):
                    yield osp.join(dirpath, name)


def test_no_reference_outside_the_repository_and_no_dangling_doc_path():
    problems = []
    for path in _files():
        rel = osp.relpath(path, ROOT)
        with open(path, encoding='utf-8', errors='replace') as f:
            for lineno, line in enumerate(f, 1):
                for m in OUTSIDE.finditer(line):
                    problems.append(f'{rel}:{lineno}: points outside the repo: {m.group(0)!r}')
                for m in DOCS_PATH.finditer(line):
                    if not osp.exists(osp.join(ROOT, m.group(1))):
                        problems.append(f'{rel}:{lineno}: no such file {m.group(1)!r}')
                if rel.endswith('.md'):
                    for m in MD_LINK.finditer(line):
                        target = m.group(1)
                        if '://' in target:
                            continue
                        if not osp.exists(osp.normpath(osp.join(osp.dirname(path), target))):
                            problems.append(f'{rel}:{lineno}: broken link {target!r}')
    assert not problems, 'fix these references:\n' + '\n'.join(problems)
