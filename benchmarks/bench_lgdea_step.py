"""Train-step time of LGDEA vs CLIP on the same evidence phrases (target LGDEA <= 1.10x CLIP-ev).

CLIP-on-evidence (``CLIPBaseline(text_source='evidence')``) encodes exactly the phrases LGDEA
encodes, so the ratio measures LGDEA's own machinery (lesion-query neck, prototype head,
propagation, its four loss terms) and not the text length: raw-report CLIP encodes ~60-token
reports (max 112) where both of these encode short phrases. Encoders, batch, timing and memory
are those of ``bench_baselines_step.py`` (the one place that defines them); this entry point
only changes the default methods. Add ``--methods lgdea clip_ev clip`` for raw CLIP too.

Usage::

    PYTHONPATH=. python benchmarks/bench_lgdea_step.py                                # CPU
    PYTHONPATH=. python benchmarks/bench_lgdea_step.py --device cuda --amp \\
        --settings vitb224 --batch 128 --out lgdea_step.json
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from bench_baselines_step import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main(default_methods=('lgdea', ), description=__doc__.split('\n')[0]))
