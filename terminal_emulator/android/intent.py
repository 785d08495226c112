"""Intents, component names and intent filters, with Android's matching rules."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from terminal_emulator.android.bundle import Bundle

ACTION_MAIN = "android.intent.action.MAIN"
ACTION_VIEW = "android.intent.action.VIEW"
CATEGORY_DEFAULT = "android.intent.category.DEFAULT"
CATEGORY_LAUNCHER = "android.intent.category.LAUNCHER"

# Flag values are Android's, so ``am start -f 0x10000000`` means the same thing here.
FLAG_EXCLUDE_STOPPED_PACKAGES = 0x00000010
FLAG_INCLUDE_STOPPED_PACKAGES = 0x00000020
FLAG_RECEIVER_FOREGROUND = 0x10000000
FLAG_ACTIVITY_NEW_TASK = 0x10000000
FLAG_ACTIVITY_SINGLE_TOP = 0x20000000
FLAG_ACTIVITY_CLEAR_TOP = 0x04000000

_PACKAGE_SEGMENT = r"[A-Za-z][A-Za-z0-9_]*"
_PACKAGE_RE = re.compile(rf"^{_PACKAGE_SEGMENT}(\.{_PACKAGE_SEGMENT})+$")
_CLASS_RE = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*(\.[A-Za-z_$][A-Za-z0-9_$]*)*$")
# RFC 3986 scheme; Android lower-cases nothing, but filters compare schemes case-sensitively.
_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")


def is_valid_package_name(name: str) -> bool:
    """Android's rule for application packages: two or more Java-identifier segments."""
    return bool(_PACKAGE_RE.match(name))


@dataclass(frozen=True, order=True)
class ComponentName:
    """A package and a fully qualified class (``jp.mpac.creditcard/.ResultReceiver``)."""

    package: str
    class_name: str

    def __post_init__(self) -> None:
        if not is_valid_package_name(self.package):
            raise ValueError(f"invalid package name {self.package!r}")
        if not _CLASS_RE.match(self.class_name):
            raise ValueError(f"invalid class name {self.class_name!r}")

    @classmethod
    def of(cls, package: str, class_name: str) -> ComponentName:
        """``class_name`` may be relative (``.MainActivity``), as in a manifest."""
        if class_name.startswith("."):
            class_name = package + class_name
        return cls(package, class_name)

    @classmethod
    def unflatten(cls, text: str) -> ComponentName:
        """Android's ``ComponentName.unflattenFromString``: ``pkg/.Cls`` or ``pkg/pkg.Cls``.

        As on Android, ``pkg/Cls`` names the class ``Cls`` itself, not ``pkg.Cls``.
        """
        package, sep, class_name = text.partition("/")
        if not sep or not package or not class_name:
            raise ValueError(f"bad component name {text!r}: expected package/class")
        return cls.of(package, class_name)

    def flatten(self) -> str:
        return f"{self.package}/{self.class_name}"

    def flatten_short(self) -> str:
        """``pkg/.Cls`` when the class lives in the package, as ``am`` and logcat print it."""
        if self.class_name.startswith(self.package + "."):
            return f"{self.package}/{self.class_name[len(self.package) :]}"
        return self.flatten()

    @property
    def short_class_name(self) -> str:
        if self.class_name.startswith(self.package + "."):
            return self.class_name[len(self.package) :]
        return self.class_name

    def __str__(self) -> str:
        return self.flatten_short()


def uri_scheme(uri: str | None) -> str | None:
    if uri is None:
        return None
    match = _SCHEME_RE.match(uri)
    return match.group(1) if match else None


class Intent:
    """An Android Intent: action, data URI, categories, component/package, flags, typed extras."""

    def __init__(
        self,
        action: str | None = None,
        *,
        data: str | None = None,
        categories: Iterable[str] = (),
        component: ComponentName | str | None = None,
        package: str | None = None,
        flags: int = 0,
        extras: Bundle | None = None,
    ) -> None:
        self.action = action
        self.data = data
        self.categories: set[str] = set(categories)
        self.component = (
            ComponentName.unflatten(component) if isinstance(component, str) else component
        )
        self.package = package
        self.flags = flags
        self.extras = extras.copy() if extras is not None else Bundle()

    @property
    def data_scheme(self) -> str | None:
        return uri_scheme(self.data)

    @property
    def is_explicit(self) -> bool:
        return self.component is not None

    @property
    def target_package(self) -> str | None:
        """The package the intent is limited to, by component or by ``setPackage``."""
        return self.component.package if self.component else self.package

    def add_category(self, category: str) -> Intent:
        self.categories.add(category)
        return self

    def add_flags(self, flags: int) -> Intent:
        self.flags |= flags
        return self

    def has_flag(self, flag: int) -> bool:
        return bool(self.flags & flag)

    def copy(self) -> Intent:
        return Intent(
            self.action,
            data=self.data,
            categories=self.categories,
            component=self.component,
            package=self.package,
            flags=self.flags,
            extras=self.extras,
        )

    def to_short_string(self) -> str:
        """Android's ``Intent.toShortString``: ``act=… cat=[…] dat=… flg=0x… cmp=… (has extras)``."""
        parts: list[str] = []
        if self.action is not None:
            parts.append(f"act={self.action}")
        if self.categories:
            parts.append("cat=[" + ",".join(sorted(self.categories)) + "]")
        if self.data is not None:
            parts.append(f"dat={self.data}")
        if self.flags:
            parts.append(f"flg=0x{self.flags:x}")
        if self.package is not None:
            parts.append(f"pkg={self.package}")
        if self.component is not None:
            parts.append(f"cmp={self.component.flatten_short()}")
        if not self.extras.is_empty():
            parts.append("(has extras)")
        return " ".join(parts)

    def __str__(self) -> str:
        return "Intent { " + self.to_short_string() + " }"

    def __repr__(self) -> str:
        return f"<{self} extras={self.extras!r}>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Intent):
            return NotImplemented
        return (
            self.action == other.action
            and self.data == other.data
            and self.categories == other.categories
            and self.component == other.component
            and self.package == other.package
            and self.flags == other.flags
            and self.extras == other.extras
        )

    __hash__ = None  # type: ignore[assignment]  # mutable, like Android's


@dataclass(frozen=True)
class IntentFilter:
    """What a manifest component (or a registered receiver) accepts.

    Matching follows ``android.content.IntentFilter.match`` for the parts the emulator uses:
    the action must be listed (an intent without action passes when the filter lists any);
    every category of the intent must be listed; a filter with no data schemes accepts only
    intents without data, one with schemes only intents whose data URI has one of them.
    """

    actions: frozenset[str] = field(default_factory=frozenset)
    categories: frozenset[str] = field(default_factory=frozenset)
    schemes: frozenset[str] = field(default_factory=frozenset)
    priority: int = 0

    @classmethod
    def create(
        cls,
        actions: Iterable[str] = (),
        *,
        categories: Iterable[str] = (),
        schemes: Iterable[str] = (),
        priority: int = 0,
    ) -> IntentFilter:
        return cls(frozenset(actions), frozenset(categories), frozenset(schemes), priority)

    def match_action(self, action: str | None) -> bool:
        if action is None:
            return bool(self.actions)
        return action in self.actions

    def match_categories(self, categories: Iterable[str]) -> bool:
        return all(category in self.categories for category in categories)

    def match_data(self, data: str | None) -> bool:
        if not self.schemes:
            return data is None
        scheme = uri_scheme(data)
        return scheme is not None and scheme in self.schemes

    def matches(self, intent: Intent, *, require_default_category: bool = False) -> bool:
        """``require_default_category``: ``startActivity`` adds CATEGORY_DEFAULT to implicit
        intents, so only filters that declare it receive them (Android's rule)."""
        categories = set(intent.categories)
        if require_default_category:
            categories.add(CATEGORY_DEFAULT)
        return (
            self.match_action(intent.action)
            and self.match_categories(categories)
            and self.match_data(intent.data)
        )
