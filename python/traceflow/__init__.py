"""traceflow: the TCP flows of packet captures, indexed into SQLite (or PostgreSQL), from Python.

Two parts:

* PyPCAPKit 1.4.1's flow tracing, call for call: ``import traceflow as pcapkit`` and
  ``pcapkit.extract(fin='in.pcap', nofile=True, trace=True, tcp=True).trace.tcp`` is the tuple of ``Index``
  objects PyPCAPKit gives, with the same dump files.
* The database: ``traceflow.open('flows.db')`` gives a :class:`Database` with ``ingest``, ``captures``,
  ``index``, ``flows``, ``connections``, ``count``, ``dump`` and ``export_pcap``.
"""

from ._native import FilterError, TraceflowError, Flow, Connection
from ._errors import (BaseError, CallableError, EngineWarning, ExtractionWarning, FileError, FileExists,
                      FileNotFound, FileWarning, FormatError, FormatWarning, IterableError, UnsupportedCall,
                      BaseWarning)
from ._info import Index, Info, TraceFlowData
from ._pcapkit import (APP, DPKT, INET, JSON, LINK, PCAP, PLIST, RAW, TRANS, TREE, Extractor, PCAPKit, PyShark,
                       Scapy, extract, reassemble, trace)
from ._db import Capture, Database, IndexEntry, IngestSummary, Results, Row, open

__version__ = '0.1.0'

__all__ = [
    # PyPCAPKit's interface
    'extract', 'reassemble', 'trace', 'Extractor',
    'TREE', 'JSON', 'PLIST', 'PCAP',
    'LINK', 'INET', 'TRANS', 'APP', 'RAW',
    'DPKT', 'Scapy', 'PyShark', 'PCAPKit',
    'Info', 'Index', 'TraceFlowData',
    'BaseError', 'UnsupportedCall', 'FormatError', 'FileExists', 'FileNotFound', 'FileError', 'IterableError',
    'CallableError', 'BaseWarning', 'FormatWarning', 'FileWarning', 'EngineWarning', 'ExtractionWarning',
    # traceflow's own
    'open', 'Database', 'Results', 'Row', 'Capture', 'IndexEntry', 'IngestSummary', 'Flow', 'Connection',
    'TraceflowError', 'FilterError',
]
