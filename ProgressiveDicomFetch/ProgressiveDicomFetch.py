"""Progressive DICOM Fetch: show remote DICOMweb series within seconds, refined in place.

This file is the Slicer shell (Module, Widget, Logic, Test). All the work is in
ProgressiveDicomFetchLib, which is pure Python and tested outside Slicer.
"""
import logging
import socket

import qt
import slicer
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

from ProgressiveDicomFetchLib import __version__
from ProgressiveDicomFetchLib.server_check import ServerCheck, check_server, validate_base_url

SETTINGS_SERVER_URL = "ProgressiveDicomFetch/ServerURL"


#
# ProgressiveDicomFetch
#


class ProgressiveDicomFetch(ScriptedLoadableModule):
    """Module metadata; see Base/Python/slicer/ScriptedLoadableModule.py in Slicer."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("Progressive DICOM Fetch")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Informatics")]
        self.parent.dependencies = []
        self.parent.contributors = ["ProgressiveDicomFetch developers"]
        self.parent.helpText = _(
            "Loads series from a DICOMweb server progressively: every series appears as a whole volume "
            "within seconds, coarse first, and is refined in place until it is exact. "
            'See the <a href="https://github.com/ProgressiveDicomFetch/ProgressiveDicomFetch#readme">README</a>.'
        ) + f" (version {__version__})"
        self.parent.acknowledgementText = _(
            "Built on 3D Slicer, pydicom, dicomweb-client and requests. "
            "Progressive loading follows the ideas of Cornerstone3D's progressive loading."
        )


#
# ProgressiveDicomFetchWidget
#


class ProgressiveDicomFetchWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The panel: a thin shell over the logic (no work happens here)."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self.ui = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/ProgressiveDicomFetch.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = ProgressiveDicomFetchLogic()

        self.ui.serverUrlLineEdit.text = qt.QSettings().value(SETTINGS_SERVER_URL, "")
        self.ui.testConnectionButton.connect("clicked(bool)", self.onTestConnection)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)

    def cleanup(self) -> None:
        """Called when the application closes or the module is reloaded."""
        self.removeObservers()

    def onSceneStartClose(self, caller, event) -> None:
        """Nothing loads yet in this version; later versions stop their downloads here."""

    def onTestConnection(self) -> None:
        url = self.ui.serverUrlLineEdit.text
        with slicer.util.tryWithErrorDisplay(_("Failed to check the server."), waitCursor=True):
            result = self.logic.checkServer(url)
            self.ui.connectionStatusLabel.text = result.message
            if result.ok:
                qt.QSettings().setValue(SETTINGS_SERVER_URL, validate_base_url(url))


#
# ProgressiveDicomFetchLogic
#


class ProgressiveDicomFetchLogic(ScriptedLoadableModuleLogic):
    """Console API (camelCase, like Slicer's); usable without the widget."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)

    def checkServer(self, url: str, auth=None, headers=None) -> ServerCheck:
        """Ask the server for one study; the result says whether it works and why not."""
        return check_server(url, auth=auth, headers=headers)


#
# ProgressiveDicomFetchTest
#


class ProgressiveDicomFetchTest(ScriptedLoadableModuleTest):
    """Self-test for a real Slicer (Slicer's Qt GUI cannot run in this project's CI)."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_RejectsBadUrl()
        self.test_UnreachableServerIsReported()

    def test_RejectsBadUrl(self):
        logic = ProgressiveDicomFetchLogic()
        with self.assertRaises(ValueError):
            logic.checkServer("ftp://example.org/dicom-web")

    def test_UnreachableServerIsReported(self):
        # A loopback port that nothing listens on: the check must fail with a message, not raise.
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        result = ProgressiveDicomFetchLogic().checkServer(f"http://127.0.0.1:{port}/dicom-web")
        self.assertFalse(result.ok)
        self.assertIn("Cannot connect", result.message)
        logging.info("ProgressiveDicomFetch self-test passed")
        self.delayDisplay("Test passed")
