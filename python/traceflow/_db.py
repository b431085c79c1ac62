"""The native part: :func:`open` gives a :class:`Database` (a SQLite file or a ``postgresql://`` URL) to ingest
captures into, list them, read the index tuple, search flows and connections with the filter language of
``traceflow flows``, and dump flows. Rows carry the CLI's JSON field names; searches stream."""

import json
import os

from . import _native

__all__ = ['open', 'Database', 'Row', 'Results']


class Row:
    """A light immutable row: fields as attributes and as keys (``row.name``, ``row['name']``), ``to_dict()``."""

    __slots__ = ('_d',)

    def __init__(self, d):
        object.__setattr__(self, '_d', dict(d))

    def __getattr__(self, name):
        try:
            return self._d[name]
        except KeyError:
            raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'") from None

    def __getitem__(self, name):
        return self._d[name]

    def __setattr__(self, name, value):
        raise AttributeError(f"'{type(self).__name__}' object is immutable")

    def __iter__(self):
        return iter(self._d)

    def __eq__(self, other):
        return isinstance(other, Row) and type(other) is type(self) and other._d == self._d

    __hash__ = None

    def keys(self):
        """The field names, in the CLI's JSON order."""
        return self._d.keys()

    def to_dict(self):
        """The row as a dict (a copy)."""
        return dict(self._d)

    def __repr__(self):
        inner = ', '.join(f'{k}={v!r}' for k, v in self._d.items())
        return f'{type(self).__name__}({inner})'


class Capture(Row):
    """A capture in the database, with the fields of ``traceflow captures --format json``."""

    __slots__ = ()


class IndexEntry(Row):
    """One entry of the index tuple: ``capture`` (when every capture's index is listed), ``fpout``, ``index``
    (frame numbers, a tuple) and ``label``, as ``traceflow query --format json`` prints it."""

    __slots__ = ()


class IngestSummary(Row):
    """What an ingest did: files, indexed, frames, flows, skipped, already, not_captures, failed, truncated,
    seconds, and the run's messages."""

    __slots__ = ()


class Results:
    """The rows of a search. Iterating streams them from the database (a new search each time; memory does not
    grow with the matches); ``list()``, ``to_pandas()`` and ``to_arrow()`` collect them."""

    def __init__(self, start, fields):
        self._start = start
        self._fields = fields

    def __iter__(self):
        return self._start()

    def to_list(self):
        """Every row, in a list."""
        return list(self)

    def to_dicts(self):
        """Every row as a dict with the CLI's JSON field names."""
        return [r.to_dict() for r in self]

    def to_pandas(self):
        """A ``pandas.DataFrame`` with one column per field (needs pandas installed)."""
        try:
            import pandas  # pylint: disable=import-outside-toplevel
        except ImportError as e:
            raise ImportError('to_pandas() needs pandas: pip install pandas') from e
        rows = self.to_dicts()
        return pandas.DataFrame.from_records(rows, columns=self._columns(rows))

    def to_arrow(self):
        """A ``pyarrow.Table`` with one column per field (needs pyarrow installed)."""
        try:
            import pyarrow  # pylint: disable=import-outside-toplevel
        except ImportError as e:
            raise ImportError('to_arrow() needs pyarrow: pip install pyarrow') from e
        rows = self.to_dicts()
        cols = self._columns(rows)
        return pyarrow.table({c: [r[c] for r in rows] for c in cols})

    def _columns(self, rows):
        if self._fields is not None:
            return list(self._fields)
        return list(rows[0].keys()) if rows else []


class Database:
    """A traceflow database: a SQLite file (made by the first ingest) or a ``postgresql://`` URL."""

    def __init__(self, db):
        self.path = os.fspath(db)

    def __repr__(self):
        return f'traceflow.Database({self.path!r})'

    def _capture_id(self, capture):
        if capture is None:
            return None
        if isinstance(capture, int):
            return capture
        return _native.resolve_capture(self.path, os.fspath(capture))

    def ingest(self, paths, *, force=False, embed=False, jobs=1, connections=False, quiet=True):
        """Index captures (files or folders, pcap/pcapng, also .gz/.zst) as ``traceflow ingest`` does; a capture
        already indexed is skipped unless ``force``. ``embed`` stores the frame bytes; ``connections`` tracks
        connections while reading (``ingest([], connections=True)`` builds them for the captures indexed
        without, as ``traceflow ingest --connections`` does; ``connections()`` needs them). Returns an :class:`IngestSummary`. Ctrl-C rolls the current capture back and
        raises ``KeyboardInterrupt``."""
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        if not paths and connections:
            # `traceflow ingest --connections` without files: connections from the stored frame rows.
            built = _native.build_connections(self.path)
            return IngestSummary(dict(files=0, indexed=0, frames=0, flows=0, skipped=0, already=0, not_captures=0,
                                      failed=0, truncated=0, seconds=0.0, messages=(), connections_built=built))
        s = _native.ingest(self.path, [os.fspath(p) for p in paths], force=force, embed=embed, jobs=jobs,
                           connections=connections, quiet=quiet)
        s['messages'] = tuple(s['messages'])
        return IngestSummary(s)

    def captures(self):
        """Every capture in the database, by id (``traceflow captures --format json``)."""
        return [Capture(c) for c in json.loads(_native.captures_json(self.path))]

    def index(self, capture=None, bidirectional=False):
        """The index tuple of one capture (a name, path or id) or of every capture, as ``traceflow query``
        gives it; ``bidirectional`` gives the two-way index."""
        cid = self._capture_id(capture)
        out = []
        for name, label, frames in _native.index(self.path, cid, bidirectional):
            d = {} if name is None else {'capture': name}
            d.update(fpout=None, index=frames, label=label)
            out.append(IndexEntry(d))
        return out

    def flows(self, filter='', sort=None, limit=None):  # pylint: disable=redefined-builtin
        """The flows that match ``filter`` (the language of ``traceflow flows``; '' is every flow), in ``sort``
        order (``time``, ``bytes``, ``packets``, ``duration``), at most ``limit``. A bad filter raises
        :class:`FilterError` at once."""
        _native.check_filter(filter, sort)
        return Results(lambda: _native.flows(self.path, filter, sort, limit), _native.Flow.FIELDS)

    def connections(self, filter='', sort=None, limit=None):  # pylint: disable=redefined-builtin
        """The connections that have a flow matching ``filter`` (``traceflow connections``)."""
        _native.check_filter(filter, sort)
        return Results(lambda: _native.connections(self.path, filter, sort, limit), None)

    def count(self, filter='', connections=False):  # pylint: disable=redefined-builtin
        """How many flows (or connections) match ``filter``."""
        return _native.count(self.path, filter, connections)

    def dump(self, label, path, format='pcap', both=False, *, capture=None,  # pylint: disable=redefined-builtin
             byteorder=None, nanosecond=False, source_root=None):
        """Write the frames of the flows labelled ``label`` to ``path`` (``traceflow query --flow LABEL -o
        PATH``): ``format`` is pcap, pcapng, json, plist, tree or text; ``both`` dumps both directions of the
        label's connection. The file is replaced only by a whole dump."""
        _native.dump_label(self.path, label, os.fspath(path), format, both, self._capture_id(capture),
                           byteorder, nanosecond, None if source_root is None else os.fspath(source_root))

    def export_pcap(self, filter, path, pcapng=False, *, sort=None, limit=None,  # pylint: disable=redefined-builtin
                    source_root=None):
        """Write the frames of every flow matching ``filter``, merged in time order, to one pcap (or pcapng)
        file (``traceflow flows FILTER --pcap PATH``). Returns ``(frames, flows)`` written."""
        return _native.export_pcap(self.path, filter, os.fspath(path), pcapng, sort, limit,
                                   None if source_root is None else os.fspath(source_root))


def open(db):  # pylint: disable=redefined-builtin
    """The traceflow database at ``db``: a SQLite path or a ``postgresql://`` URL."""
    return Database(db)
