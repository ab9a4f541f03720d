"""Versioned prompts of the LLM evidence extractor. The prompt hash is part of the cache key."""
import importlib
from dataclasses import dataclass
from typing import List, Tuple

from ..base import stable_hash


@dataclass(frozen=True)
class EvidencePrompt:
    """A versioned prompt: system text, user template and few-shot examples.

    Attributes:
        version: the prompt id, e.g. ``'evidence_v1'``.
        system: system message (task, rules, output schema).
        user_template: user message with a ``{report}`` placeholder.
        examples: few-shot ``(report, expected JSON output)`` pairs (synthetic reports).
    """

    version: str
    system: str
    user_template: str
    examples: Tuple[Tuple[str, str], ...]

    @property
    def sha256(self) -> str:
        """Hash of everything the model sees apart from the report (cache key part)."""
        return stable_hash([self.version, self.system, self.user_template, list(self.examples)])

    def messages(self, report: str) -> List[Tuple[str, str]]:
        """``(role, content)`` messages: system, few-shot turns, then the report."""
        out = [('system', self.system)]
        for example_report, answer in self.examples:
            out.append(('human', self.user_template.format(report=example_report)))
            out.append(('ai', answer))
        out.append(('human', self.user_template.format(report=report)))
        return out


def load_prompt(version: str = 'evidence_v1') -> EvidencePrompt:
    """Load a prompt module ``lgdea.evidence.prompts.<version>``."""
    if not version.replace('_', '').isalnum():
        raise ValueError(f'invalid prompt version {version!r}')
    try:
        mod = importlib.import_module(f'{__name__}.{version}')
    except ModuleNotFoundError:
        raise ValueError(f'unknown evidence prompt version {version!r}: add '
                         f'lgdea/evidence/prompts/{version}.py') from None
    return EvidencePrompt(version=version, system=mod.SYSTEM, user_template=mod.USER_TEMPLATE,
                          examples=tuple(tuple(e) for e in mod.EXAMPLES))
