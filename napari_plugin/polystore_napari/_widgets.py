"""The plugin's dock widgets: thin qtpy shells over the Qt-free controller and store model."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qtpy.QtCore import QEvent, QObject, Qt, QTimer, Signal  # type: ignore[attr-defined]
from qtpy.QtWidgets import (
    QApplication,
    QFileDialog,
    QSizePolicy,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from polystore_napari._controller import StreamController
from polystore_napari._store import StoreBrowserModel, StoreNode

if TYPE_CHECKING:
    import napari

__all__ = ["StreamReceiverWidget", "StoreBrowserWidget", "ensure_canvas_room", "MIN_CANVAS_SIZE"]

#: The smallest canvas (width, height) a viewer with the receiver docked keeps.
MIN_CANVAS_SIZE = (800, 600)


def ensure_canvas_room(viewer: Any) -> None:
    """Keep the canvas at least :data:`MIN_CANVAS_SIZE` and grow the window to fit it and its docks.

    Docked widgets otherwise squeeze napari's default ~600x460 window down
    to a sliver of canvas that draws nothing. The window stays within the
    screen's available area.
    """
    viewer = getattr(viewer, "__wrapped__", viewer)  # the plugin menu passes a public-only proxy
    window = getattr(viewer, "window", None)
    qt_viewer = getattr(window, "_qt_viewer", None)
    qt_window = getattr(window, "_qt_window", None)
    if qt_viewer is None or qt_window is None:
        return
    canvas = qt_viewer.canvas.native
    canvas.setMinimumSize(*MIN_CANVAS_SIZE)
    hint = qt_window.sizeHint().expandedTo(qt_window.minimumSizeHint())
    screen = qt_window.screen() or QApplication.primaryScreen()
    width, height = max(hint.width(), qt_window.width()), max(hint.height(), qt_window.height())
    if screen is not None:
        area = screen.availableGeometry()
        width, height = min(width, area.width()), min(height, area.height())
    if (width, height) != (qt_window.width(), qt_window.height()):
        qt_window.resize(width, height)


class _Waker(QObject):
    """Carries the receiver thread's wake-up to the GUI thread (queued signal)."""

    woke = Signal()


class StreamReceiverWidget(QWidget):
    """Dock widget: endpoint field, Start/Stop, status and counters of the stream receiver.

    It listens as soon as it is created (``listen=False`` to start it later);
    closing it (or removing it from the viewer) stops the receiver and frees
    the endpoint. A start error stays shown until the next start or stop.
    ``allow_remote`` and ``curve_secret_key`` (Z85) are for listening beyond
    loopback; see ``docs/streaming-protocol.md`` (Endpoints and security).
    """

    def __init__(
        self,
        napari_viewer: napari.viewer.Viewer,
        endpoint: str | None = None,
        parent: QWidget | None = None,
        *,
        allow_remote: bool = False,
        curve_secret_key: bytes | str | None = None,
        listen: bool = True,
    ) -> None:
        super().__init__(parent)
        self._viewer = napari_viewer
        self._error = ""
        self._waker = _Waker()
        self.controller = StreamController(
            napari_viewer,
            endpoint,
            wake=self._waker.woke.emit,
            allow_remote=allow_remote,
            curve_secret_key=curve_secret_key,
        )
        self._waker.woke.connect(self._tick, Qt.ConnectionType.QueuedConnection)  # type: ignore[call-arg]

        self.endpoint_edit = QLineEdit(self.controller.endpoint)
        self.endpoint_edit.setToolTip("tcp://127.0.0.1:PORT or ipc:///path; senders use the same")
        self.toggle_button = QPushButton("Start")
        self.toggle_button.clicked.connect(self.toggle)
        self.status_label = QLabel("stopped")
        self.status_label.setWordWrap(True)
        self.counters_label = QLabel("")
        self.counters_label.setWordWrap(True)
        self.error_label = QLabel("")
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: #e06c6c")
        # Compact: the canvas, not this panel, gets the window's room.
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        self.setMaximumWidth(340)

        row = QHBoxLayout()
        row.addWidget(self.endpoint_edit)
        row.addWidget(self.toggle_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.setSpacing(2)
        layout.addLayout(row)
        layout.addWidget(self.status_label)
        layout.addWidget(self.counters_label)
        layout.addWidget(self.error_label)

        self._timer = QTimer(self)
        self._timer.setInterval(500)
        self._timer.timeout.connect(self.refresh_status)
        self._timer.start()
        self.destroyed.connect(self.controller.stop)
        self._room_made = False
        if listen:
            self.toggle()

    def _tick(self) -> None:
        self.controller.tick()

    def start(self, endpoint: str | None = None) -> str:
        """Start listening on ``endpoint`` (default: the field's text); returns the bound endpoint."""
        self._error = ""
        bound = self.controller.start(endpoint or self.endpoint_edit.text().strip() or None)
        self.endpoint_edit.setText(bound)
        self.endpoint_edit.setEnabled(False)
        self.toggle_button.setText("Stop")
        self.refresh_status()
        return bound

    def stop(self) -> None:
        """Stop listening."""
        self._error = ""
        self.controller.stop()
        self.endpoint_edit.setEnabled(True)
        self.toggle_button.setText("Start")
        self.refresh_status()

    def toggle(self) -> None:
        """Start or stop, showing a bind error in the widget instead of raising."""
        if self.controller.listening:
            self.stop()
            return
        try:
            self.start()
        except Exception as exc:  # noqa: BLE001 - shown to the user
            self._error = f"cannot start: {exc}"
            self.refresh_status()

    def refresh_status(self) -> None:
        """Update the status and counter labels (and thumbnails of live layers, see ``refresh_thumbnails``)."""
        self.controller.refresh_thumbnails()
        s = self.controller.status()
        self.status_label.setText(f"{s.state}: {s.endpoint}")
        self.counters_label.setText(
            f"frames received {s.received} ({s.frames_per_second:.0f}/s), shown {s.shown} "
            f"({s.shown_per_second:.0f}/s)\ncoalesced {s.coalesced}, malformed {s.malformed}, "
            f"gaps {s.gaps}, rejected {s.rejected}, peers {s.peers}\n"
            + "shown by kind: " + ", ".join(f"{kind} {n}" for kind, n in s.kinds.items())
        )
        self.error_label.setText("\n".join(e for e in (self._error, s.last_error) if e))

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt naming
        """Stop the receiver when the widget closes."""
        self.controller.stop()
        super().closeEvent(event)

    def showEvent(self, event: Any) -> None:  # noqa: N802 - Qt naming
        """Once docked and shown, make sure the canvas keeps a usable size."""
        super().showEvent(event)
        if not self._room_made:
            self._room_made = True
            QTimer.singleShot(0, lambda: ensure_canvas_room(self._viewer))

    def event(self, event: Any) -> bool:
        """Stop the receiver when the widget is taken out of the viewer (its dock's close button)."""
        if event.type() == QEvent.Type.ParentChange and self.parent() is None:
            self.stop()
        return bool(super().event(event))


class StoreBrowserWidget(QWidget):
    """Dock widget: choose a folder or zarr store, browse its tree, open items as layers."""

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.model: StoreBrowserModel | None = None
        self.path_edit = QLineEdit()
        self.path_edit.setPlaceholderText("folder or .zarr store")
        self.path_edit.returnPressed.connect(lambda: self.set_root(self.path_edit.text()))
        browse = QPushButton("Browse...")
        browse.clicked.connect(self._choose)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["name", "kind"])
        self.tree.itemExpanded.connect(self._expand)
        self.tree.itemDoubleClicked.connect(lambda item, _col: self.open_item(item))
        open_button = QPushButton("Open as layer")
        open_button.clicked.connect(lambda: self.open_item(self.tree.currentItem()))
        self.message = QLabel("")
        self.message.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(self.path_edit)
        row.addWidget(browse)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.tree)
        layout.addWidget(open_button)
        layout.addWidget(self.message)

    def _choose(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Choose a folder or a .zarr store")
        if path:
            self.set_root(path)

    def set_root(self, path: str) -> None:
        """Show the tree under ``path``."""
        self.path_edit.setText(path)
        self.tree.clear()
        try:
            self.model = StoreBrowserModel(path)
            root = self.model.root_node()
        except Exception as exc:  # noqa: BLE001 - shown to the user
            self.model = None
            self.message.setText(f"cannot open {path}: {exc}")
            return
        item = self._item(root)
        self.tree.addTopLevelItem(item)
        item.setExpanded(True)
        self.message.setText("")

    def _item(self, node: StoreNode) -> QTreeWidgetItem:
        item = QTreeWidgetItem([node.name, node.kind])
        item.setData(0, Qt.ItemDataRole.UserRole, node)
        if node.expandable:
            item.setChildIndicatorPolicy(QTreeWidgetItem.ChildIndicatorPolicy.ShowIndicator)
        return item

    def _expand(self, item: QTreeWidgetItem) -> None:
        if self.model is None or item.childCount():
            return
        node = item.data(0, Qt.ItemDataRole.UserRole)
        try:
            for child in self.model.children(node):
                item.addChild(self._item(child))
        except Exception as exc:  # noqa: BLE001 - shown to the user
            self.message.setText(f"cannot list {node.path}: {exc}")

    def open_item(self, item: QTreeWidgetItem | None) -> Any:
        """Open the node of ``item`` as image layer(s); returns the layer, a list of
        layers (one per OME channel) or None."""
        if self.model is None or item is None:
            return None
        node = item.data(0, Qt.ItemDataRole.UserRole)
        if not node.openable:
            item.setExpanded(True)
            return None
        try:
            data, kwargs = self.model.open(node)
            layer = self.viewer.add_image(data, **kwargs)  # a list when split by channel
        except Exception as exc:  # noqa: BLE001 - shown to the user
            self.message.setText(f"cannot open {node.path}: {exc}")
            return None
        self.message.setText(f"opened {node.path}")
        return layer
