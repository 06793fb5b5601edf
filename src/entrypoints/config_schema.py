"""How a setting is declared, once: `setting(default, parser, doc, ...)` on a section's
attrs field, and the Declarations that the environment, the TOML file, `Settings.of`,
`config show` and the generated reference all read."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import attrs

from chat_outbox.entrypoints.config_parsers import PREFIX, ConfigError, redact_url, utf8

T = TypeVar("T")
Parser = Callable[[str, str], Any]
"""(variable name, raw text) -> value, or a one-line ConfigError naming the variable."""
SPEC = "chat_outbox.setting"
ENV_PREFIX = "chat_outbox.env_prefix"


@attrs.frozen
class Spec:
    """What a field's metadata holds; its name and section come from where it sits."""

    parse: Parser
    doc: str
    env: str | None
    least: float | None
    most: float | None
    secret: bool
    url: bool


def setting(
    default: T,
    parse: Parser,
    doc: str,
    *,
    env: str | None = None,
    least: float | None = None,
    most: float | None = None,
    secret: bool = False,
    url: bool = False,
) -> T:
    """A section's field: its default, the parser that checks its text, a one-line doc,
    its variable when not CHAT_OUTBOX_<SECTION>_<NAME> (`env`, without the prefix), its
    least and most value, and whether it is a secret (or a URL that may hold a password)."""
    spec = Spec(parse, doc, env, least, most, secret, url)
    shown = _redactor(secret, url)
    field = attrs.field(
        default=default, repr=lambda value: repr(shown(value)), metadata={SPEC: spec}
    )
    return field


@attrs.frozen
class Declaration:
    """One setting, as declared on its section."""

    section: str
    name: str
    variable: str
    """The environment variable, CHAT_OUTBOX_..."""
    type: str
    default: object
    spec: Spec

    @property
    def key(self) -> str:
        """The variable without its prefix, in lower case: the TOML and Settings.of key."""
        return self.variable.removeprefix(PREFIX).lower()

    @property
    def qualified(self) -> str:
        """section_name: also a TOML key, as a `[section]` table's key spells it."""
        return f"{self.section}_{self.name}"

    @property
    def doc(self) -> str:
        return self.spec.doc

    @property
    def secret(self) -> bool:
        return self.spec.secret or self.spec.url

    def redact(self, value: object) -> object:
        return _redactor(self.spec.secret, self.spec.url)(value)

    def read(self, raw: str) -> object:
        """The variable's text as a value within its limits, or a one-line ConfigError."""
        value = self.spec.parse(self.variable, utf8(self.key, raw))
        return within_limits(self, value)


def declarations_of(settings_class: type) -> tuple[Declaration, ...]:
    """Every setting of a class whose fields are sections, in declaration order."""
    found = []
    for holder in attrs.fields(settings_class):
        cls = holder.default.factory
        prefix = holder.metadata.get(ENV_PREFIX)
        prefix = f"{holder.name}_" if prefix is None else prefix
        for field in attrs.fields(cls):
            spec: Spec = field.metadata[SPEC]
            variable = PREFIX + (spec.env or prefix + field.name).upper()
            kind = str(field.type).replace(" ", "")
            found.append(Declaration(holder.name, field.name, variable, kind, field.default, spec))
    return tuple(found)


def build(settings_class: type[T], values: Mapping[Declaration, object]) -> T:
    """Settings of the given values (by declaration), the rest at their defaults."""
    sections: dict[str, dict[str, object]] = {}
    for declaration, value in values.items():
        sections.setdefault(declaration.section, {})[declaration.name] = value
    kwargs = {
        holder.name: holder.default.factory(**sections.get(holder.name, {}))
        for holder in attrs.fields(settings_class)  # type: ignore[arg-type]
    }
    return settings_class(**kwargs)


def within_limits(declaration: Declaration, value: T) -> T:
    """The value when it is within the setting's least and most (if any), else ConfigError."""
    least, most = declaration.spec.least, declaration.spec.most
    if not isinstance(value, int | float) or isinstance(value, bool):
        return value
    number: float = value
    # A float as 1e+308; a whole number of up to 4,300 digits (int's limit) by its length.
    shown = f"{number:.6g}" if isinstance(number, float) else str(number)
    if isinstance(number, int) and len(shown) > 20:
        shown = f"a {len(shown)}-digit number"
    if most is not None and number > most:
        raise ConfigError(f"{declaration.variable} must be at most {most}, got {shown}")
    if least is not None and number < least:
        raise ConfigError(f"{declaration.variable} must be at least {least}, got {shown}")
    return value


def _redactor(secret: bool, url: bool) -> Callable[[object], object]:
    def redact(value: object) -> object:
        if secret and isinstance(value, str) and value:
            return "***"
        if url and isinstance(value, str):
            return redact_url(value)
        return value

    return redact
