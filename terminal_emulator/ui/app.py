"""The Kivy window: a SmartPOS device body beside a card-presentation panel.

The window only renders the presenter's :class:`Screen` and forwards input (``press``,
``type_text``, ``present_card``, ``enter_pin``); every behaviour is the presenter's. Screens
from the presenter (maybe from the device thread) reach the Kivy thread through one helper,
:meth:`TerminalView.post_screen`, which uses ``Clock.schedule_once``.

Widget ids start with their type: ``lbl_title``, ``txt_amount``, ``btn_charge``,
``btn_card_<pan>``, ``btn_reader_tap``, ``btn_pin_7``... ``TerminalView.widget(id)`` finds any
of them (the ones declared in ``terminal.kv`` and the ones built per screen).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

# (The package, imported before this module, sets KIVY_NO_ARGS before Kivy is imported.)
from kivy.app import App
from kivy.clock import Clock
from kivy.lang import Builder
from kivy.properties import BooleanProperty, ListProperty, StringProperty
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.button import Button as KivyButton
from kivy.uix.label import Label
from kivy.uix.textinput import TextInput
from kivy.uix.togglebutton import ToggleButton
from kivy.uix.widget import Widget

from terminal_emulator.presentation import Screen, TerminalPresenter, TestCard
from terminal_emulator.ui.format import (
    app_name,
    card_number,
    field_label,
    field_preview,
    is_numeric_field,
    masked_pin,
)

KV_FILE = Path(__file__).with_name("terminal.kv")
WINDOW_SIZE = (1100, 900)
CARD_METHODS = ("tap", "insert", "swipe")
# Screen buttons that step back rather than forward are drawn neutral.
NEUTRAL_BUTTONS = frozenset({"cancel", "back", "close", "no", "done"})

PRIMARY = (0.10, 0.45, 0.85, 1)
NEUTRAL = (0.42, 0.46, 0.52, 1)
DANGER = (0.80, 0.22, 0.22, 1)
APP_COLORS = {"business": (0.05, 0.55, 0.50, 1), "creditcard": (0.33, 0.28, 0.70, 1)}


class TouchButton(KivyButton):
    """A large rounded touch button; ``fill`` is its colour."""

    fill = ListProperty(PRIMARY)
    disabled_fill = ListProperty((0.82, 0.84, 0.87, 1))


class CardButton(ToggleButton):
    """One test card of the reader panel; one at a time is selected."""

    pan = StringProperty("")


class ScreenLine(Label):
    pass


class FieldInput(TextInput):
    pass


class TerminalView(BoxLayout):
    """The root widget. Kivy properties feed the static parts of ``terminal.kv``."""

    terminal_name = StringProperty("")
    serial = StringProperty("")
    online = BooleanProperty(False)
    enrolled = BooleanProperty(False)
    clock = StringProperty("--:--")
    app_label = StringProperty("")
    app_color = ListProperty(APP_COLORS["business"])
    title_text = StringProperty("")
    title_color = ListProperty((0.1, 0.12, 0.16, 1))
    screen_name = StringProperty("")
    selected_pan = StringProperty("")
    pin = StringProperty("")
    pin_display = StringProperty("")
    reader_hint = StringProperty("")

    def __init__(self, presenter: TerminalPresenter, **kwargs: Any) -> None:
        self.presenter = presenter
        self._dynamic: dict[str, Widget] = {}
        self._field_inputs: dict[str, TextInput] = {}
        self._field_previews: dict[str, Label] = {}
        self._field_layout: tuple[str, tuple[str, ...]] | None = None
        self._button_keys: list[str] = []
        self._rendering = False
        self._pending: Screen | None = None
        self._pending_lock = threading.Lock()
        self.rendered: list[Screen] = []  # every screen shown, in order (tests read it)
        super().__init__(**kwargs)
        self._build_cards(presenter.test_cards())
        self.render(presenter.current_screen())

    # -- presenter -> UI -------------------------------------------------------------------

    def post_screen(self, screen: Screen) -> None:
        """THE way a screen reaches the UI, from any thread: rendered on the Kivy thread at the
        next frame; of screens posted in between, only the newest is rendered."""
        with self._pending_lock:
            first = self._pending is None
            self._pending = screen
        if first:
            Clock.schedule_once(self._render_pending, 0)

    def _render_pending(self, _dt: float) -> None:
        with self._pending_lock:
            screen, self._pending = self._pending, None
        if screen is not None:
            self.render(screen)

    def render(self, screen: Screen) -> None:
        """Shows ``screen`` (Kivy thread only)."""
        self._rendering = True
        try:
            self._render_status(screen)
            self._render_lines(screen)
            self._render_fields(screen)
            self._render_buttons(screen)
            self._render_reader(screen)
        finally:
            self._rendering = False
        self.rendered.append(screen)

    def _render_status(self, screen: Screen) -> None:
        status = screen.status
        self.terminal_name = status.terminal_name
        self.serial = status.serial
        self.online = status.online
        self.enrolled = status.enrolled
        self.clock = status.clock
        self.app_label = app_name(screen.app)
        self.app_color = APP_COLORS.get(screen.app, NEUTRAL)
        self.screen_name = screen.name
        self.title_text = screen.title
        title = screen.title.lower()
        if any(word in title for word in ("declin", "fail", "error", "denied")):
            self.title_color = DANGER
        elif any(word in title for word in ("approved", "success", "complete")):
            self.title_color = (0.10, 0.55, 0.25, 1)
        else:
            self.title_color = (0.1, 0.12, 0.16, 1)

    def _render_lines(self, screen: Screen) -> None:
        box = self.ids.box_lines
        box.clear_widgets()
        for key in [k for k in self._dynamic if k.startswith("lbl_line_")]:
            del self._dynamic[key]
        for index, text in enumerate(screen.lines):
            line = ScreenLine(text=text)
            box.add_widget(line)
            self._dynamic[f"lbl_line_{index}"] = line

    def _render_fields(self, screen: Screen) -> None:
        layout = (screen.name, tuple(screen.fields))
        if layout != self._field_layout:
            self._build_fields(screen)
            self._field_layout = layout
        for field, value in screen.fields.items():
            text_input = self._field_inputs[field]
            # The user is the source of truth of the field they are typing in.
            if text_input.text != value and not text_input.focus:
                text_input.text = value
            self._field_previews[field].text = field_preview(field, text_input.text)

    def _build_fields(self, screen: Screen) -> None:
        box = self.ids.box_fields
        box.clear_widgets()
        for key in [
            k for k in self._dynamic if k.startswith(("txt_", "lbl_field_", "lbl_preview_"))
        ]:
            del self._dynamic[key]
        self._field_inputs.clear()
        self._field_previews.clear()
        for field, value in screen.fields.items():
            label = Label(
                text=field_label(field),
                color=(0.35, 0.38, 0.44, 1),
                font_size="14sp",
                size_hint_y=None,
                height=22,
                halign="left",
                valign="bottom",
            )
            label.bind(size=label.setter("text_size"))
            text_input = FieldInput(
                text=value, input_filter="int" if is_numeric_field(field) else None
            )
            text_input.password = field == "pin"
            text_input.bind(text=lambda _w, text, f=field: self._on_field_text(f, text))
            preview = Label(
                text=field_preview(field, value),
                color=PRIMARY,
                bold=True,
                font_size="26sp",
                size_hint_y=None,
                height=36 if field_preview(field, "1") else 0,
                halign="right",
            )
            preview.bind(size=preview.setter("text_size"))
            for widget in (label, text_input, preview):
                box.add_widget(widget)
            self._field_inputs[field] = text_input
            self._field_previews[field] = preview
            self._dynamic[f"lbl_field_{field}"] = label
            self._dynamic[f"txt_{field}"] = text_input
            self._dynamic[f"lbl_preview_{field}"] = preview

    def _render_buttons(self, screen: Screen) -> None:
        box = self.ids.box_buttons
        box.clear_widgets()
        for key in self._button_keys:
            self._dynamic.pop(key, None)
        self._button_keys = []
        box.cols = 1 if len(screen.buttons) <= 3 else 2
        for index, spec in enumerate(screen.buttons):
            neutral = spec.id in NEUTRAL_BUTTONS or (index > 0 and len(screen.buttons) > 1)
            button = TouchButton(
                text=spec.label, disabled=not spec.enabled, fill=NEUTRAL if neutral else PRIMARY
            )
            button.bind(on_release=lambda _b, button_id=spec.id: self.presenter.press(button_id))
            box.add_widget(button)
            self._dynamic[f"btn_{spec.id}"] = button
            self._button_keys.append(f"btn_{spec.id}")

    # -- the card reader panel -----------------------------------------------------------

    def _build_cards(self, cards: tuple[TestCard, ...]) -> None:
        box = self.ids.list_cards
        for card in cards:
            button = CardButton(
                text=f"{card.label}\n[size=13sp][color=#9aa4b2]{card_number(card.pan)}  "
                f"{card.brand.upper()}[/color][/size]",
                pan=card.pan,
            )
            button.bind(on_release=self._on_card_chosen)
            box.add_widget(button)
            self._dynamic[f"btn_card_{card.pan}"] = button

    def _on_card_chosen(self, button: CardButton) -> None:
        self.selected_pan = button.pan if button.state == "down" else ""
        self._render_reader(None)

    def _render_reader(self, screen: Screen | None) -> None:
        name = screen.name if screen is not None else self.screen_name
        reading = name == "present_card"
        for method in CARD_METHODS:
            self.ids[f"btn_reader_{method}"].disabled = not (reading and self.selected_pan)
        pin_wanted = name == "pin_entry"
        for key in (*map(str, range(10)), "clear", "ok"):
            self.ids[f"btn_pin_{key}"].disabled = not pin_wanted
        if screen is not None:
            cancel = screen.button("cancel")
            self.ids.btn_reader_cancel.disabled = cancel is None or not cancel.enabled
        if not pin_wanted and self.pin:
            self.pin = ""
        self.pin_display = masked_pin(self.pin) if self.pin else ("Enter PIN" if pin_wanted else "")
        if reading:
            self.reader_hint = (
                "Tap, insert or swipe the card" if self.selected_pan else "Choose a test card"
            )
        elif pin_wanted:
            self.reader_hint = "Enter the PIN on the pad"
        else:
            self.reader_hint = "The reader is idle"

    # -- UI -> presenter -----------------------------------------------------------------

    def _on_field_text(self, field: str, text: str) -> None:
        preview = self._field_previews.get(field)
        if preview is not None:
            preview.text = field_preview(field, text)
        if not self._rendering:
            self.presenter.type_text(field, text)

    def present(self, method: str) -> None:
        if self.selected_pan:
            self.presenter.present_card(method, self.selected_pan)

    def pin_key(self, key: str) -> None:
        if key == "clear":
            self.pin = ""
        elif key == "ok":
            pin, self.pin = self.pin, ""
            self.presenter.enter_pin(pin)
        elif len(self.pin) < 12:
            self.pin += key
        self.pin_display = masked_pin(self.pin) if self.pin else "Enter PIN"

    def cancel(self) -> None:
        self.presenter.press("cancel")

    # -- lookup --------------------------------------------------------------------------

    def widget(self, widget_id: str) -> Widget:
        """The widget of ``widget_id`` (``KeyError`` when the current screen has none)."""
        if widget_id in self._dynamic:
            return self._dynamic[widget_id]
        return self.ids[widget_id]

    def has_widget(self, widget_id: str) -> bool:
        return widget_id in self._dynamic or widget_id in self.ids


class TerminalApp(App):
    """The window of one terminal; ``TerminalApp(presenter).run()`` blocks until closed."""

    def __init__(self, presenter: TerminalPresenter, *, title: str = "MPAC SmartPOS") -> None:
        super().__init__()
        self.presenter = presenter
        self.title = title
        self.view: TerminalView | None = None
        self._unsubscribe: Callable[[], None] | None = None

    def build(self) -> TerminalView:
        from kivy.core.window import Window  # creating the window is importing this

        Window.size = WINDOW_SIZE
        Window.clearcolor = (0.16, 0.17, 0.19, 1)
        if KV_FILE.as_posix() not in Builder.files:
            Builder.load_file(KV_FILE.as_posix())
        self.view = TerminalView(self.presenter)
        self._unsubscribe = self.presenter.subscribe(self.view.post_screen)
        return self.view

    def on_stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def screenshot(self, path: Path) -> Path:
        """Saves what the window shows now (the last drawn frame) as PNG at ``path``."""
        from kivy.core.window import Window

        path.parent.mkdir(parents=True, exist_ok=True)
        # Window.screenshot numbers its files (name0001.png): take it, then move it.
        taken = Window.screenshot(name=str(path.with_name(f".{path.stem}-shot.png")))
        Path(taken).replace(path)
        return path


def run_window(presenter: TerminalPresenter, *, title: str = "MPAC SmartPOS") -> None:
    """Opens the terminal's window on ``presenter``; returns when it is closed."""
    TerminalApp(presenter, title=title).run()
