"""The plugin's dock widgets: thin qtpy shells over the Qt-free controller and store model."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qtpy.QtCore import QObject, Qt, QTimer, Signal  # type: ignore[attr-defined]
from qtpy.QtWidgets import (
    QFileDialog,
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

__all__ = ["StreamReceiverWidget", "StoreBrowserWidget"]


class _Waker(QObject):
    """Carries the receiver thread's wake-up to the GUI thread (queued signal)."""

    woke = Signal()


class StreamReceiverWidget(QWidget):
    """Dock widget: endpoint field, Start/Stop, status and counters of the stream receiver.

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
    ) -> None:
        super().__init__(parent)
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

        row = QHBoxLayout()
        row.addWidget(self.endpoint_edit)
        row.addWidget(self.toggle_button)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.status_label)
        layout.addWidget(self.counters_label)
        layout.addWidget(self.error_label)
        layout.addStretch(1)

        self._timer = QTimer(self)
        self._timer.setInterval(500)
        self._timer.timeout.connect(self.refresh_status)
        self._timer.start()
        self.destroyed.connect(self.controller.stop)

    def _tick(self) -> None:
        self.controller.tick()

    def start(self, endpoint: str | None = None) -> str:
        """Start listening on ``endpoint`` (default: the field's text); returns the bound endpoint."""
        bound = self.controller.start(endpoint or self.endpoint_edit.text().strip() or None)
        self.endpoint_edit.setText(bound)
        self.endpoint_edit.setEnabled(False)
        self.toggle_button.setText("Stop")
        self.refresh_status()
        return bound

    def stop(self) -> None:
        """Stop listening."""
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
            self.error_label.setText(f"cannot start: {exc}")

    def refresh_status(self) -> None:
        """Update the status and counter labels."""
        s = self.controller.status()
        self.status_label.setText(f"{s.state}: {s.endpoint}")
        self.counters_label.setText(
            f"frames received {s.received} ({s.frames_per_second:.0f}/s), shown {s.shown} "
            f"({s.shown_per_second:.0f}/s)\ncoalesced {s.coalesced}, malformed {s.malformed}, "
            f"gaps {s.gaps}, rejected {s.rejected}, peers {s.peers}"
        )
        self.error_label.setText(s.last_error)

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt naming
        """Stop the receiver when the widget closes."""
        self.controller.stop()
        super().closeEvent(event)


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
