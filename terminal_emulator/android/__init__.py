"""An Android-like runtime in pure Python: the ground the emulated SmartPOS apps run on.

Intents with typed extras, packages with intent filters, activities with results, ordered
broadcasts, app processes that can be force-stopped, logcat, system properties and per-app
storage; one :class:`Device` per terminal, many per Python process. No UI toolkit here: the
Kivy UI renders what this runtime does (``docs/terminal-emulator.md``).
"""

from terminal_emulator.android.activity import (
    RESULT_CANCELED,
    RESULT_FIRST_USER,
    RESULT_OK,
    Activity,
    LifecycleState,
)
from terminal_emulator.android.activity_manager import (
    ROOT_UID,
    SHELL_UID,
    SYSTEM_UID,
    ActivityEvent,
    ActivityManager,
    ActivityRecord,
    ActivityResult,
    BroadcastResult,
    StartResult,
)
from terminal_emulator.android.bundle import (
    Bundle,
    ExtraType,
    TypedValue,
    format_am_string_array,
    parse_am_string_array,
)
from terminal_emulator.android.clock import Clock, ManualClock, SystemClock
from terminal_emulator.android.concurrency import (
    CancellationSignal,
    OperationCanceled,
    OperationTimeout,
    run_with_timeout,
)
from terminal_emulator.android.context import Application, Context, Log
from terminal_emulator.android.device import Device, DeviceConfig, DeviceThread
from terminal_emulator.android.errors import (
    ActivityNotFoundError,
    AndroidRuntimeError,
    DeviceNotRunningError,
    IllegalStateError,
    PackageNotFoundError,
    SecurityError,
)
from terminal_emulator.android.intent import (
    ACTION_MAIN,
    CATEGORY_DEFAULT,
    CATEGORY_LAUNCHER,
    FLAG_ACTIVITY_NEW_TASK,
    FLAG_EXCLUDE_STOPPED_PACKAGES,
    FLAG_INCLUDE_STOPPED_PACKAGES,
    FLAG_RECEIVER_FOREGROUND,
    ComponentName,
    Intent,
    IntentFilter,
)
from terminal_emulator.android.logcat import (
    LogcatOptions,
    LogcatUsageError,
    LogEntry,
    LogFilter,
    Priority,
)
from terminal_emulator.android.package_manager import (
    ActivityDeclaration,
    PackageManager,
    PackageManifest,
    ReceiverDeclaration,
)
from terminal_emulator.android.process import ProcessRecord
from terminal_emulator.android.receiver import BroadcastReceiver, PendingResult
from terminal_emulator.android.storage import AppStorage, KeyValueDatabase, SharedPreferences

__all__ = [
    "ACTION_MAIN",
    "CATEGORY_DEFAULT",
    "CATEGORY_LAUNCHER",
    "FLAG_ACTIVITY_NEW_TASK",
    "FLAG_EXCLUDE_STOPPED_PACKAGES",
    "FLAG_INCLUDE_STOPPED_PACKAGES",
    "FLAG_RECEIVER_FOREGROUND",
    "RESULT_CANCELED",
    "RESULT_FIRST_USER",
    "RESULT_OK",
    "ROOT_UID",
    "SHELL_UID",
    "SYSTEM_UID",
    "Activity",
    "ActivityDeclaration",
    "ActivityEvent",
    "ActivityManager",
    "ActivityNotFoundError",
    "ActivityRecord",
    "ActivityResult",
    "AndroidRuntimeError",
    "AppStorage",
    "Application",
    "BroadcastReceiver",
    "BroadcastResult",
    "Bundle",
    "CancellationSignal",
    "Clock",
    "ComponentName",
    "Context",
    "Device",
    "DeviceConfig",
    "DeviceNotRunningError",
    "DeviceThread",
    "ExtraType",
    "IllegalStateError",
    "Intent",
    "IntentFilter",
    "KeyValueDatabase",
    "LifecycleState",
    "Log",
    "LogEntry",
    "LogFilter",
    "LogcatOptions",
    "LogcatUsageError",
    "ManualClock",
    "OperationCanceled",
    "OperationTimeout",
    "PackageManager",
    "PackageManifest",
    "PackageNotFoundError",
    "PendingResult",
    "Priority",
    "ProcessRecord",
    "ReceiverDeclaration",
    "SecurityError",
    "SharedPreferences",
    "StartResult",
    "SystemClock",
    "TypedValue",
    "format_am_string_array",
    "parse_am_string_array",
    "run_with_timeout",
]
