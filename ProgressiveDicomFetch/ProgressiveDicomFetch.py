"""Progressive DICOM Fetch: show remote DICOMweb series within seconds, refined in place.

This file is the Slicer shell (Module, Widget, Logic, Test): Qt lives here only. The work is in
ProgressiveDicomFetchLib, pure Python tested outside Slicer: the panel's form, tables, settings and
progress rows (panel/), and the console API's state (scene/fetch_session.py), which the Logic
methods call one to one.
"""
import datetime
import logging
import os
from typing import Annotated, Any, List, Optional

import qt
import slicer
import vtk
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

from ProgressiveDicomFetchLib import __version__
from ProgressiveDicomFetchLib.cache import FrameCache, cache_dir_outside
from ProgressiveDicomFetchLib.engine.events import COMPLETE, ERROR
from ProgressiveDicomFetchLib.engine.scheduler import BREADTH_FIRST, STRATEGIES
from ProgressiveDicomFetchLib.panel import (AUTH_KINDS, SERVER_KINDS, DATE_PRESETS, SERIES_COLUMNS, STUDY_COLUMNS,
                                            RecentServers, SearchForm, ServerSettings, changed_rows, is_loadable,
                                            progress_row, status_message, table_rows)
from ProgressiveDicomFetchLib.panel.notices import DECODERS, PREVIEWS, Notices
from ProgressiveDicomFetchLib.panel.result_tables import default_order
from ProgressiveDicomFetchLib.scene.dicom_database import (SETTING_DEFAULT, SETTING_KEY, DatabaseImports,
                                                           load_from_database, series_count_in_database)
from ProgressiveDicomFetchLib.scene.fetch_session import FetchSession
from ProgressiveDicomFetchLib.scene.partial_marking import partial_nodes, save_warning
from ProgressiveDicomFetchLib.dicomweb.server_check import ServerCheck
from ProgressiveDicomFetchLib.transport import dimse_packages

SETTINGS_GROUP = "ProgressiveDicomFetch/"
SAMPLE_SERVER_ITEM = "Sample server (local)"
SERVER_KIND_LABELS = {"dicomweb": "DICOMweb", "dimse": "DICOM (DIMSE)"}
AUTH_LABELS = {"none": "None", "basic": "Basic (user, password)", "bearer": "Bearer token", "header": "Custom header"}
# Slicer's Python keeps the GIL while Qt idles: tick often, and sleep with the GIL released inside the
# tick, as long as work is in flight (at most PUMP_YIELD_MS; none when idle or paused), so the download
# threads run (engine.pump; designs and figures in docs/slicer.md).
PUMP_INTERVAL_MS = 2
PUMP_BUDGET_MS = 5.0
PUMP_YIELD_MS = 8.0


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
            "within seconds, coarse first, and is refined in place until it is exact. The series in the view "
            "you look at is loaded first. "
            'See the <a href="https://github.com/ProgressiveDicomFetch/ProgressiveDicomFetch#readme">README</a>.'
        ) + f" (version {__version__})"
        self.parent.acknowledgementText = _(
            "Built on 3D Slicer, pydicom, dicomweb-client and requests. "
            "Progressive loading follows the ideas of Cornerstone3D's progressive loading."
        )


#
# ProgressiveDicomFetchParameterNode
#


@parameterNodeWrapper
class ProgressiveDicomFetchParameterNode:
    """The panel's search and load choices. No credentials here: the node is kept out of saved scenes."""

    patientName: str = ""
    patientID: str = ""
    accessionNumber: str = ""
    studyDatePreset: Annotated[str, Choice(list(DATE_PRESETS))] = "any"
    modality: str = ""
    studyDescription: str = ""
    strategy: Annotated[str, Choice(list(STRATEGIES))] = BREADTH_FIRST
    connections: Annotated[int, WithinRange(1, 16)] = 4
    boostFocus: bool = True


#
# ProgressiveDicomFetchWidget
#


class ProgressiveDicomFetchWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The panel: moves values between Qt widgets and the Lib's panel records; no work happens here."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self.ui = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._studies: List[Any] = []
        self._series: List[Any] = []
        self._labels = {}
        self._shownRows = []  # ProgressRow per table row, as last shown
        self._notices = Notices()  # offers collected in ticks, shown after them, once per cause
        self._showingNotices = False
        self._pumpTimer = qt.QTimer()

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/ProgressiveDicomFetch.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = ProgressiveDicomFetchLogic()

        for kind in SERVER_KINDS:
            self.ui.serverKindComboBox.addItem(SERVER_KIND_LABELS[kind], kind)
        for kind in AUTH_KINDS:
            self.ui.authKindComboBox.addItem(AUTH_LABELS[kind], kind)
        self._restoreServerSettings()
        self._setUpTable(self.ui.studiesTableWidget, [c.title for c in STUDY_COLUMNS])
        self._setUpTable(self.ui.seriesTableWidget, [c.title for c in SERIES_COLUMNS])
        self._setUpTable(self.ui.progressTableWidget, [_("Series"), _("Quality"), _("State"), ""])
        today = qt.QDate.currentDate()
        self.ui.dateFromEdit.date, self.ui.dateToEdit.date = today.addDays(-30), today

        self.ui.serverUrlComboBox.connect("activated(int)", self.onServerChosen)
        self.ui.authKindComboBox.connect("currentIndexChanged(int)", self.onAuthKindChanged)
        self.ui.serverKindComboBox.connect("currentIndexChanged(int)", self.onAuthKindChanged)
        self.ui.testConnectionButton.connect("clicked(bool)", self.onTestConnection)
        self.ui.studyDateComboBox.connect("currentIndexChanged(int)", self.onDatePresetChanged)
        self.ui.searchButton.connect("clicked(bool)", self.onSearch)
        for lineEdit in (self.ui.patientNameLineEdit, self.ui.patientIdLineEdit, self.ui.accessionLineEdit,
                         self.ui.modalityLineEdit, self.ui.descriptionLineEdit):
            lineEdit.connect("returnPressed()", self.onSearch)
        self.ui.studiesTableWidget.connect("itemSelectionChanged()", self.onStudySelectionChanged)
        self.ui.seriesTableWidget.connect("itemSelectionChanged()", self.onSeriesSelectionChanged)
        self.ui.loadButton.connect("clicked(bool)", self.onLoad)
        self.ui.addToDatabaseCheckBox.checked = self.logic.addToDatabaseEnabled()
        self.ui.addToDatabaseCheckBox.connect("toggled(bool)", self.logic.setAddToDatabase)
        self.ui.pauseButton.connect("toggled(bool)", self.onPauseToggled)
        self.ui.cancelAllButton.connect("clicked(bool)", self.onCancelAll)
        self._pumpTimer.setInterval(PUMP_INTERVAL_MS)
        self._pumpTimer.connect("timeout()", self.onPump)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartSaveEvent, self.onSceneStartSave)
        self.onAuthKindChanged()
        self.initializeParameterNode()

    def cleanup(self) -> None:
        """The application closes or the module is reloaded: stop the downloads and the sample server."""
        self._pumpTimer.stop()
        self.logic.stop()
        self.logic.stopSampleServer()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        # Downloads go on while another module is shown; only the GUI binding is released.
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None

    def onSceneStartClose(self, caller, event) -> None:
        self._pumpTimer.stop()
        self.logic.stop()
        self.setParameterNode(None)
        self.ui.progressTableWidget.setRowCount(0)
        self._shownRows = []

    def onSceneStartSave(self, caller, event) -> None:
        """Saving while volumes are partial: say which, and that their files hold filled slices."""
        warning = save_warning(partial_nodes(slicer.mrmlScene))
        if warning:
            slicer.util.warningDisplay(warning, windowTitle=_("Saving partial volumes"))

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())

    def setParameterNode(self, inputParameterNode: Optional[ProgressiveDicomFetchParameterNode]) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)

    # -- server --------------------------------------------------------------------------------------
    def _settings(self) -> ServerSettings:
        return ServerSettings(url=self.ui.serverUrlComboBox.currentText, auth_kind=self.ui.authKindComboBox.currentData,
                              username=self.ui.usernameLineEdit.text, header_name=self.ui.headerNameLineEdit.text,
                              secret=self.ui.secretLineEdit.text,
                              remember_credentials=self.ui.rememberCredentialsCheckBox.checked,
                              kind=self.ui.serverKindComboBox.currentData, calling_aet=self.ui.callingAetLineEdit.text)

    def _restoreServerSettings(self) -> None:
        store = qt.QSettings()
        keys = ("ServerURL", "AuthKind", "Username", "HeaderName", "RememberCredentials", "Secret", "ServerKind",
                "CallingAET")
        settings = ServerSettings.from_store({k: store.value(SETTINGS_GROUP + k) for k in keys})
        recent = RecentServers.from_setting(store.value(SETTINGS_GROUP + "RecentServers"))
        self.ui.serverUrlComboBox.clear()
        self.ui.serverUrlComboBox.addItems(recent.urls + [SAMPLE_SERVER_ITEM])
        self.ui.serverUrlComboBox.setEditText(settings.url)
        self.ui.authKindComboBox.currentIndex = max(0, self.ui.authKindComboBox.findData(settings.auth_kind))
        self.ui.usernameLineEdit.text, self.ui.headerNameLineEdit.text = settings.username, settings.header_name
        self.ui.secretLineEdit.text = settings.secret
        self.ui.rememberCredentialsCheckBox.checked = settings.remember_credentials
        self.ui.serverKindComboBox.currentIndex = max(0, self.ui.serverKindComboBox.findData(settings.kind))
        self.ui.callingAetLineEdit.text = settings.calling_aet

    def _saveServerSettings(self, settings: ServerSettings) -> None:
        store = qt.QSettings()
        for key, value in settings.to_store().items():
            store.setValue(SETTINGS_GROUP + key, value)
        recent = RecentServers.from_setting(store.value(SETTINGS_GROUP + "RecentServers"))
        recent.add(settings.base_url())
        store.setValue(SETTINGS_GROUP + "RecentServers", recent.urls)

    def onServerChosen(self, index: int) -> None:
        if self.ui.serverUrlComboBox.itemText(index) != SAMPLE_SERVER_ITEM:
            kind = ServerSettings.kind_of(self.ui.serverUrlComboBox.itemText(index))
            self.ui.serverKindComboBox.currentIndex = self.ui.serverKindComboBox.findData(kind)
            return
        with slicer.util.tryWithErrorDisplay(_("Failed to start the sample server."), waitCursor=True):
            self.ui.serverUrlComboBox.setEditText(self.logic.startSampleServer())
            self.ui.authKindComboBox.currentIndex = self.ui.authKindComboBox.findData("none")
            self.ui.serverKindComboBox.currentIndex = self.ui.serverKindComboBox.findData("dicomweb")
            self.ui.connectionStatusLabel.text = _("Sample server running on this computer (generated data).")

    def onAuthKindChanged(self, index: int = 0) -> None:
        """Enable the fields the server kind and authentication use (DIMSE: AE titles only)."""
        dimse = self.ui.serverKindComboBox.currentData == "dimse"
        kind = "none" if dimse else self.ui.authKindComboBox.currentData
        self.ui.authKindComboBox.enabled = not dimse
        self.ui.callingAetLineEdit.enabled = dimse
        self.ui.serverUrlLabel.text = _("Peer (AET@host:port):") if dimse else _("DICOMweb URL:")
        self.ui.usernameLineEdit.enabled = kind == "basic"
        self.ui.headerNameLineEdit.enabled = kind == "header"
        self.ui.secretLineEdit.enabled = self.ui.rememberCredentialsCheckBox.enabled = kind != "none"

    def _connect(self) -> ServerSettings:
        """Point the logic at the panel's server (ValueError naming a bad field)."""
        settings = self._settings()
        if settings.kind == "dimse":
            self._offerDimse()
        self.logic.setServer(settings.base_url(), auth=settings.auth(), callingAET=settings.calling_ae_title())
        return settings

    def onTestConnection(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to check the server."), waitCursor=True):
            settings = self._connect()
            result = self.logic.checkServer()
            self.ui.connectionStatusLabel.text = result.message
            if result.ok and not self.logic.isSampleServer(settings.base_url()):  # its port changes each time
                self._saveServerSettings(settings)

    # -- search --------------------------------------------------------------------------------------
    def onDatePresetChanged(self, index: int) -> None:
        isRange = self.ui.studyDateComboBox.currentText == "range"
        self.ui.dateFromEdit.enabled = self.ui.dateToEdit.enabled = isRange

    def _form(self) -> SearchForm:
        return SearchForm(patient_name=self.ui.patientNameLineEdit.text, patient_id=self.ui.patientIdLineEdit.text,
                          accession_number=self.ui.accessionLineEdit.text,
                          date_preset=self.ui.studyDateComboBox.currentText,
                          date_from=self._day(self.ui.dateFromEdit.date), date_to=self._day(self.ui.dateToEdit.date),
                          modality=self.ui.modalityLineEdit.text, description=self.ui.descriptionLineEdit.text)

    @staticmethod
    def _day(qdate) -> datetime.date:
        return datetime.date(qdate.year(), qdate.month(), qdate.day())

    def onSearch(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Search failed."), waitCursor=True):
            self._connect()
            result = self.logic.searchStudies(self._form().filters())
            self._studies = default_order(result)
            self._fillTable(self.ui.studiesTableWidget, table_rows(self._studies, STUDY_COLUMNS))
            self._fillTable(self.ui.seriesTableWidget, [])
            notes = " ".join(result.notes)
            self.ui.searchStatusLabel.text = _("{count} studies found.").format(count=len(self._studies)) + (
                f" {notes}" if notes else "")

    def onStudySelectionChanged(self) -> None:
        rows = self._selectedRows(self.ui.studiesTableWidget)
        with slicer.util.tryWithErrorDisplay(_("Failed to list the series."), waitCursor=True):
            self._series = [s for row in rows for s in self.logic.searchSeries(self._studies[row].study_uid)]
            self._series.sort(key=lambda s: (s.study_uid, s.series_number is None, s.series_number or 0))
            self._fillTable(self.ui.seriesTableWidget, table_rows(self._series, SERIES_COLUMNS))
            for row, series in enumerate(self._series):
                if self.logic.isInDatabase(series.series_uid, series.number_of_instances):
                    item = self.ui.seriesTableWidget.item(row, 0)
                    item.setText(item.text() + " " + _("(in DICOM database)"))
                    item.setToolTip(_("Slicer's DICOM database already holds this series: it can be loaded from there."))
                loadable, why = is_loadable(series)
                if not loadable:
                    for column in range(len(SERIES_COLUMNS)):
                        item = self.ui.seriesTableWidget.item(row, column)
                        item.setFlags(qt.Qt.NoItemFlags)  # greyed out, not selectable
                        item.setToolTip(why)
        self.onSeriesSelectionChanged()

    def onSeriesSelectionChanged(self) -> None:
        self.ui.loadButton.enabled = bool(self._selectedRows(self.ui.seriesTableWidget))

    # -- load and progress ---------------------------------------------------------------------------
    def onLoad(self) -> None:
        chosen = [self._series[row] for row in self._selectedRows(self.ui.seriesTableWidget)]
        if not self.ui.refreshFromServerCheckBox.checked:
            stored = [s for s in chosen if self.logic.isInDatabase(s.series_uid, s.number_of_instances)]
            if stored:
                with slicer.util.tryWithErrorDisplay(_("Failed to load from the DICOM database."), waitCursor=True):
                    self.logic.loadFromDatabase([s.series_uid for s in stored])
                chosen = [s for s in chosen if s not in stored]
            if not chosen:
                return
        with slicer.util.tryWithErrorDisplay(_("Failed to start loading."), waitCursor=True):
            self._connect()
            parameters = self._parameterNode
            seriesByStudy = {}
            for series in chosen:
                seriesByStudy.setdefault(series.study_uid, []).append(series.series_uid)
                self._labels[series.series_uid] = f"{series.series_number or ''}: {series.series_description}".strip(": ")
            outcome = self.logic.loadStudies(seriesByStudy, strategy=parameters.strategy,
                                             connections=parameters.connections, boostFocus=parameters.boostFocus,
                                             waitForMetadata=False)
            self.ui.pauseButton.checked = False
            self._pumpTimer.start()  # whatever failed, the studies that started are pumped
            if outcome.errors:
                raise RuntimeError("\n".join(f"{study}: {error}" for study, error in outcome.errors.items()))

    def onPump(self) -> None:
        """One tick: apply what the workers did (within a small budget), then let them run."""
        update = self.logic.process(budgetMs=PUMP_BUDGET_MS, yieldMs=PUMP_YIELD_MS)
        for event in update.events:
            message = status_message(event, self._labels)
            if message:
                slicer.util.showStatusMessage(message, 5000)
            if event.event == ERROR:
                self._notices.add(DECODERS, self.logic.missingDecoders(event.series_uid), event.series_uid)
            elif event.event == COMPLETE:
                self._notices.add(PREVIEWS, self.logic.optionalPackages(event.series_uid), event.series_uid)
        if update:
            self._showProgress()
        if not self.logic.isLoading():
            self._pumpTimer.stop()
            self._showProgress()
        if self._notices.pending():  # dialogs never inside the tick: after it, from the event loop
            qt.QTimer.singleShot(0, self._showNotices)

    def _showNotices(self) -> None:
        """Each pending offer once (per cause and session); ticks may run while a dialog is open."""
        if self._showingNotices:
            return
        self._showingNotices = True
        try:
            for notice in self._notices.take():
                if notice.kind == DECODERS:
                    self._offerDecoders(notice.packages)
                else:
                    self._offerPreviews(notice.packages)
        finally:
            self._showingNotices = False

    def _showProgress(self) -> None:
        """Only the rows that changed are set (changed_rows): items and style sheets cost per row."""
        table = self.ui.progressTableWidget
        views = [progress_row(s, self._labels.get(s.series_uid)) for s in self.logic.progress()]
        if table.rowCount != len(views):
            table.setRowCount(len(views))
        for row in changed_rows(self._shownRows, views):
            view = views[row]
            table.setItem(row, 0, qt.QTableWidgetItem(view.label))
            bar = table.cellWidget(row, 1)
            if bar is None:  # set once: setting a cell widget again would delete the old one
                bar = qt.QProgressBar()
                bar.setRange(0, 100)
                table.setCellWidget(row, 1, bar)
            bar.value, bar.format, bar.styleSheet = view.bar_percent, view.bar_text, view.bar_style
            table.setItem(row, 2, qt.QTableWidgetItem(view.state_text))
            button = table.cellWidget(row, 3)
            if button is None:
                button = qt.QPushButton(_("Cancel"))
                button.connect("clicked(bool)", lambda checked, row=row: self.onCancelRow(row))
                table.setCellWidget(row, 3, button)
            button.enabled = view.can_cancel
        self._shownRows = views

    def onCancelRow(self, row: int) -> None:
        """A row's Cancel button: the series shown in that row now (rows keep their order)."""
        if row < len(self._shownRows):
            self.logic.cancel(self._shownRows[row].series_uid)

    def onPauseToggled(self, paused: bool) -> None:
        if paused:
            self.logic.pause()
        else:
            self.logic.resume()
        self.ui.pauseButton.text = _("Resume all") if paused else _("Pause all")

    def onCancelAll(self) -> None:
        for snapshot in self.logic.progress():
            self.logic.cancel(snapshot.series_uid)

    def _offerDimse(self) -> None:
        """A DIMSE server needs pynetdicom, which Slicer does not include: install it with consent."""
        packages = self.logic.dimsePackages()
        if packages and slicer.util.confirmOkCancelDisplay(
                _("A DICOM (DIMSE) server needs the Python package {packages}, which Slicer does not include. "
                  "Install it now?").format(packages=", ".join(packages))):
            with slicer.util.tryWithErrorDisplay(_("Failed to install pynetdicom."), waitCursor=True):
                self.logic.installDecoders(packages)

    def _offerDecoders(self, packages) -> None:
        """Series compressed with a codec this Slicer cannot decode: offer the decoder (asked once)."""
        if slicer.util.confirmOkCancelDisplay(
                _("A series is compressed with a codec that Slicer does not include. Install {packages} now? "
                  "Then load the series again.").format(packages=", ".join(packages))):
            with slicer.util.tryWithErrorDisplay(_("Failed to install the decoder."), waitCursor=True):
                self.logic.installDecoders(list(packages))

    def _offerPreviews(self, packages) -> None:
        """HTJ2K series loaded without previews for want of imagecodecs: offer it (asked once a session)."""
        if slicer.util.confirmOkCancelDisplay(
                _("This series is stored as HTJ2K. With {packages} installed, every slice shows a reduced "
                  "preview within seconds (it loads without it too). Install it now? It is used from the next "
                  "load.").format(packages=", ".join(packages))):
            with slicer.util.tryWithErrorDisplay(_("Failed to install the package."), waitCursor=True):
                self.logic.installDecoders(list(packages))

    # -- tables --------------------------------------------------------------------------------------
    @staticmethod
    def _setUpTable(table, headers: List[str]) -> None:
        table.setColumnCount(len(headers))
        table.setHorizontalHeaderLabels(headers)
        table.horizontalHeader().setStretchLastSection(True)
        table.verticalHeader().setVisible(False)

    @staticmethod
    def _fillTable(table, rows: List[List[str]]) -> None:
        table.setSortingEnabled(False)  # rows keep their record index while filled
        table.clearContents()
        table.setRowCount(len(rows))
        for row, cells in enumerate(rows):
            for column, text in enumerate(cells):
                item = qt.QTableWidgetItem(text)
                item.setData(qt.Qt.UserRole, row)
                table.setItem(row, column, item)
        table.resizeColumnsToContents()
        table.setSortingEnabled(True)  # the user sorts by any column; selections map through UserRole

    @staticmethod
    def _selectedRows(table) -> List[int]:
        """Indexes of the selected records (the rows carry them, so sorting the table is harmless)."""
        return sorted({item.data(qt.Qt.UserRole) for item in table.selectedItems()})


#
# ProgressiveDicomFetchLogic
#


class ProgressiveDicomFetchLogic(ScriptedLoadableModuleLogic):
    """Console API (camelCase, like Slicer's); usable without the widget. Each method is one call
    into the tested Lib: FetchSession for the server, searches and loads."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        # Frames kept on disk: a series loaded again (after a failure, a cancel or a restart of Slicer)
        # downloads only what is missing. Outside Slicer's cache folder, which Slicer 5.12 prunes by
        # whole top-level entries at start-up (cache/location.py).
        self.frameCache = FrameCache(cache_dir_outside(slicer.app.cachePath))
        self.session = FetchSession(slicer.mrmlScene, cache=self.frameCache)
        self._studyOfSeries = {}  # SeriesInstanceUID -> StudyInstanceUID, for the DICOM database import
        self.databaseImports: Optional[DatabaseImports] = None
        self.sampleServer = None
        self.sampleTree = None

    def getParameterNode(self):
        node = super().getParameterNode()
        node.SetSaveWithScene(False)  # panel choices are not part of the data; never in scene files
        return ProgressiveDicomFetchParameterNode(node)

    def setServer(self, url: str, auth=None, headers=None, verify=True, callingAET: str = ""):
        """Use this DICOMweb server (`auth`: a requests auth object, see ProgressiveDicomFetchLib.dicomweb),
        or a classic PACS: setServer("dimse://AET@host:port", callingAET="MYSLICER") (needs pynetdicom)."""
        return self.session.set_server(url, auth=auth, headers=headers, verify=verify, calling_aet=callingAET)

    def checkServer(self) -> ServerCheck:
        return self.session.check_server()

    def searchStudies(self, filters=None, limit=None):
        """Studies matching QIDO-RS filters, e.g. {"PatientName": "DOE^J*", "StudyDate": "20240101-"}."""
        return self.session.search_studies(filters, limit=limit)

    def searchSeries(self, studyUID: str, filters=None):
        return self.session.search_series(studyUID, filters)

    def loadSeries(self, studyUID: str, seriesUIDs, strategy: str = BREADTH_FIRST, connections: int = 4,
                   boostFocus: bool = True, waitForMetadata: bool = True):
        """Volume nodes of the series, refined in place while `process()` or `waitForLoad()` runs."""
        self._studyOfSeries.update({uid: studyUID for uid in seriesUIDs})
        return self.session.load(studyUID, seriesUIDs, strategy=strategy, connections=connections,
                                 boost_focus=boostFocus, wait_for_metadata=waitForMetadata)

    def loadStudies(self, seriesByStudy, strategy: str = BREADTH_FIRST, connections: int = 4,
                    boostFocus: bool = True, waitForMetadata: bool = True):
        """loadSeries for each study ({studyUID: [seriesUID, ...]}); a failing study does not stop the
        others. Returns nodes and, per failed study, its error."""
        return self.session.load_studies(seriesByStudy, strategy=strategy, connections=connections,
                                         boost_focus=boostFocus, wait_for_metadata=waitForMetadata)

    def process(self, budgetMs: float = 5.0, yieldMs: float = 0.0):
        update = self.session.process(budgetMs, yieldMs)
        self._addCompletedToDatabase([e.series_uid for e in update.events if e.event == COMPLETE])
        return update

    # -- Slicer's DICOM database (ProgressiveDicomFetchLib/scene/dicom_database.py) -----------------
    def addToDatabaseEnabled(self) -> bool:
        return slicer.util.settingsValue(SETTING_KEY, SETTING_DEFAULT, converter=slicer.util.toBool)

    def setAddToDatabase(self, enabled: bool) -> None:
        qt.QSettings().setValue(SETTING_KEY, bool(enabled))

    def isInDatabase(self, seriesUID: str, instanceCount: Optional[int]) -> bool:
        return series_count_in_database(slicer.dicomDatabase, seriesUID, instanceCount)

    def loadFromDatabase(self, seriesUIDs) -> List[str]:
        """Series already in Slicer's DICOM database, loaded from there by Slicer's DICOM plugins."""
        return load_from_database(seriesUIDs)

    def _addCompletedToDatabase(self, completed: List[str]) -> None:
        """Files of completed series are written by a worker; the database indexes them here (main thread)."""
        if self.databaseImports is not None:
            for job in self.databaseImports.poll():
                if job.imported:
                    slicer.util.showStatusMessage(_("Series {uid} added to the DICOM database.").format(uid=job.series_uid), 5000)
        if not completed or not self.addToDatabaseEnabled():
            return
        if self.databaseImports is None:
            self.databaseImports = DatabaseImports(slicer.dicomDatabase, self.frameCache)
        for uid in completed:
            if not self.databaseImports.add(self.session.loading_server(uid), self._studyOfSeries[uid], uid):
                logging.warning("No open DICOM database: series %s is not added to it", uid)

    def waitForLoad(self, timeout: Optional[float] = None) -> bool:
        """Block until the loads are done; the views repaint meanwhile (Qt events processed)."""
        return self.session.wait(timeout, on_idle=slicer.app.processEvents)

    def progress(self):
        return self.session.progress()

    def isLoading(self) -> bool:
        return self.session.busy() or (self.databaseImports is not None and self.databaseImports.busy())

    def cancel(self, seriesUID: str) -> None:
        self.session.cancel(seriesUID)

    def pause(self) -> None:
        self.session.pause()

    def resume(self) -> None:
        self.session.resume()

    def stop(self) -> None:
        self.session.close()

    def missingDecoders(self, seriesUID: str) -> List[str]:
        return self.session.missing_decoders(seriesUID)

    def dimsePackages(self) -> List[str]:
        """What to install for DIMSE servers ([] when pynetdicom is there)."""
        return dimse_packages()

    def optionalPackages(self, seriesUID: str) -> List[str]:
        return self.session.optional_packages(seriesUID)

    def installDecoders(self, packages: List[str]) -> None:
        """Install packages the user has just agreed to (the panel asked once): through an installer
        that does not ask again, then the next load imports them (no restart). Slicer 5.12:
        slicer.pydeps.pip_install (pip_ensure would ask a second time and raise if declined);
        5.11 previews: slicer.packaging.pip_install(interactive=False); 5.8/5.10: slicer.util.pip_install."""
        try:
            import slicer.pydeps as pydeps
        except ImportError:
            pydeps = None
        try:
            import slicer.packaging as packaging
        except ImportError:
            packaging = None
        if pydeps is not None:
            pydeps.pip_install(packages, requester="ProgressiveDicomFetch")
        elif packaging is not None:
            packaging.pip_install(packages, interactive=False)
        else:
            slicer.util.pip_install(packages)
        self.session.packages_installed()

    def startSampleServer(self) -> str:
        """Serve generated sample data from this process on 127.0.0.1; returns its DICOMweb URL."""
        if self.sampleServer is None:
            from ProgressiveDicomFetchLib.sampledata.sample_server import SampleServer, ensure_sample

            sample = ensure_sample(os.path.join(slicer.app.cachePath, "ProgressiveDicomFetch", "sample"))
            self.sampleTree = sample.tree
            self.sampleServer = SampleServer(self.sampleTree.root)
            self.sampleServer.start()
            self.session.name_content(self.sampleServer.url, sample.content_identity)  # cached across ports
        return self.sampleServer.url

    def isSampleServer(self, url: str) -> bool:
        return self.sampleServer is not None and url.rstrip("/") == self.sampleServer.url.rstrip("/")

    def stopSampleServer(self) -> None:
        if self.sampleServer is not None:
            self.sampleServer.stop()
            self.sampleServer = None


#
# ProgressiveDicomFetchTest
#


class ProgressiveDicomFetchTest(ScriptedLoadableModuleTest):
    """Self-test for a real Slicer, with no network beyond loopback: it serves generated data from
    the built-in sample server and loads a series through the Logic."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_RejectsBadUrl()
        self.test_LoadsCoarseThenExact()

    def test_RejectsBadUrl(self):
        with self.assertRaises(ValueError):
            ProgressiveDicomFetchLogic().setServer("ftp://example.org/dicom-web")

    def test_LoadsCoarseThenExact(self):
        import numpy as np

        logic = ProgressiveDicomFetchLogic()
        try:
            logic.setServer(logic.startSampleServer())
            self.assertTrue(logic.checkServer().ok)
            study = list(logic.searchStudies())[0]
            series = max(logic.searchSeries(study.study_uid), key=lambda s: s.number_of_instances or 0)
            (node,) = logic.loadSeries(study.study_uid, [series.series_uid], connections=2)
            self.assertEqual(slicer.util.arrayFromVolume(node).shape[0], series.number_of_instances)
            coarse = False
            while logic.isLoading():
                logic.process(yieldMs=5)
                (snapshot,) = logic.progress()
                coarse |= snapshot.level in (8, 4, 2)  # every 8th, 4th or 2nd slice exact, not yet all
                slicer.app.processEvents()
            self.assertTrue(coarse, "a coarse whole volume should appear before the exact one")
            self._checkAgainstDicom(node, logic.sampleTree, series.series_uid, np)
        finally:
            logic.stop()
            logic.stopSampleServer()
        logging.info("ProgressiveDicomFetch self-test passed")
        self.delayDisplay("Test passed")

    def _checkAgainstDicom(self, node, tree, seriesUID, np):
        """Voxels and geometry equal what pydicom reads from the served files."""
        import pydicom

        files = [pydicom.dcmread(i.source) for i in tree.instances if i.series_uid == seriesUID]
        files.sort(key=lambda ds: float(np.dot(ds.ImagePositionPatient, np.cross(
            ds.ImageOrientationPatient[:3], ds.ImageOrientationPatient[3:]))))
        expected = np.stack([ds.pixel_array * float(getattr(ds, "RescaleSlope", 1)) + float(getattr(ds, "RescaleIntercept", 0))
                             for ds in files])
        np.testing.assert_array_equal(slicer.util.arrayFromVolume(node), expected.astype(slicer.util.arrayFromVolume(node).dtype))
        origin = [-files[0].ImagePositionPatient[0], -files[0].ImagePositionPatient[1], files[0].ImagePositionPatient[2]]
        np.testing.assert_allclose(node.GetOrigin(), origin, atol=1e-4)
        spacing = [float(files[0].PixelSpacing[1]), float(files[0].PixelSpacing[0])]
        np.testing.assert_allclose(node.GetSpacing()[:2], spacing, atol=1e-6)
        matrix = vtk.vtkMatrix4x4()
        node.GetIJKToRASMatrix(matrix)
        self.assertEqual(matrix.GetElement(3, 3), 1.0)
