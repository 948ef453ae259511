"""The prompt of one query: a user turn of the backbone's chat template with the generation prompt, or the raw text.

When the template reads `enable_thinking` (Qwen3) thinking is turned off, as in the paper; the decision comes from
the template's variables, never from the model name. A tokenizer without a chat template gets the raw query (one
warning). Prompts longer than `prompt_max_length` lose the end of the query, never the template around it.
"""

import re
import warnings

from transformers import PreTrainedTokenizerBase

from genvec.errors import InputError


class PromptBuilder:
    """Token ids of the prompt for one query: chat template (one user turn + generation prompt) or raw text.

    Attributes:
        uses_template: the tokenizer has a chat template.
        no_thinking: the template reads `enable_thinking`, and it is set to False.
        cut: how many prompts were cut to `max_length` so far.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, max_length: int) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.cut = 0
        template = _chat_template(tokenizer)
        self.uses_template = template is not None
        self.no_thinking = self.uses_template and "enable_thinking" in _template_variables(template)
        if not self.uses_template:
            warnings.warn(
                f"the tokenizer of {tokenizer.name_or_path!r} has no chat template; the backbone reads each raw "
                "query as its prompt. Use an instruction-tuned backbone for chat-style responses.",
                stacklevel=3,
            )

    def __call__(self, query: str) -> list[int]:
        ids = self._render(query)
        if len(ids) <= self.max_length:
            return ids
        if self.cut == 0:
            warnings.warn(
                f"a prompt of {len(ids)} tokens is longer than prompt_max_length={self.max_length}; the end of such "
                "queries is cut (the chat template is kept). The metadata counts them.",
                stacklevel=4,
            )
        self.cut += 1
        return self._cut(query, len(ids))

    def _render(self, text: str) -> list[int]:
        if not self.uses_template:
            return self.tokenizer(text, add_special_tokens=True)["input_ids"]
        extra = {"enable_thinking": False} if self.no_thinking else {}
        prompt = self.tokenizer.apply_chat_template(
            [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=False, **extra
        )
        # The template already holds every special token (a Llama BOS included): adding them again would double it.
        return self.tokenizer(prompt, add_special_tokens=False)["input_ids"]

    def _cut(self, query: str, full_length: int) -> list[int]:
        """Keep the template, shorten the query until the prompt fits (re-tokenising can merge tokens)."""
        query_ids = self.tokenizer(query, add_special_tokens=False)["input_ids"]
        keep = len(query_ids) - (full_length - self.max_length)
        while keep > 0:
            ids = self._render(self.tokenizer.decode(query_ids[:keep]))
            if len(ids) <= self.max_length:
                return ids
            keep -= max(1, len(ids) - self.max_length)
        raise InputError(
            f"prompt_max_length={self.max_length} cannot hold the chat template with any of the query; raise it."
        )


def _chat_template(tokenizer: PreTrainedTokenizerBase) -> str | None:
    if not getattr(tokenizer, "chat_template", None):
        return None
    try:
        return tokenizer.get_chat_template()
    except ValueError:  # several named templates and no default: the raw query is the honest fallback
        return None


def _template_variables(template: str) -> set[str]:
    """Variables a Jinja chat template reads from its caller (e.g. `messages`, `enable_thinking`)."""
    import jinja2
    import jinja2.ext
    import jinja2.meta

    try:
        environment = jinja2.Environment(extensions=[jinja2.ext.loopcontrols])
        return set(jinja2.meta.find_undeclared_variables(environment.parse(template)))
    except jinja2.TemplateSyntaxError:  # templates with custom tags: fall back to a whole-word search
        return set(re.findall(r"\b(enable_thinking)\b", template))

