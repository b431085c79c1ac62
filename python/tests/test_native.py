"""``traceflow.open(db)`` against the CLI: on the same database (ingested by the CLI, and again by Python), the
native API's captures, index tuples, flows, connections, counts, dumps and merged pcaps equal what `traceflow
captures/query/flows/connections` print or write; filters fail with the CLI's column and caret; rows are
immutable; Ctrl-C stops a long ingest and rolls its capture back."""

import json
import os
import signal
import threading
import time

import pytest

import traceflow

from conftest import conformance_dir

# Plain Ethernet captures with many flows, IPv6, connections and a label that repeats.
CAPTURES = ['CVE-2018-6794.pcap', 'http-simple-get.pcap', 'arkime_synthetic.pcap', 'http2-nghttp2.pcap',
            'modbus.pcap', 'ftp.pcap', 'dns-tcp.pcap', 'variant-pcapng-http-simple-get.pcapng',
            'variant-gzip-socks-http-example.pcap.gz']
FILTERS = ['', 'port 80', 'host 10.0.0.1 or port 443', 'syn and not fin', 'closed and packets > 3',
           'net 10.0.0.0/8 and bytes >= 200', 'dst port 502', 'rst']


def paths():
    return [os.path.join(conformance_dir(), 'captures', n) for n in CAPTURES]


@pytest.fixture(scope='module')
def dbs(tmp_path_factory, cli):
    d = tmp_path_factory.mktemp('native')
    by_cli = str(d / 'cli.db')
    cli('ingest', '--db', by_cli, '--quiet', '--connections', *paths())
    by_py = str(d / 'py.db')
    s = traceflow.open(by_py).ingest(paths(), connections=True)
    assert (s.indexed, s.failed) == (len(CAPTURES), 0)
    return by_cli, by_py


def cli_json(cli, *args):
    return json.loads(cli(*args).stdout)


def cli_jsonl(cli, *args):
    return [json.loads(line) for line in cli(*args).stdout.decode().splitlines() if line]


def test_ingest_summary_counts(dbs, cli):
    db = traceflow.open(dbs[1])
    caps = cli_json(cli, 'captures', '--db', dbs[0], '--format', 'json')
    again = db.ingest(paths())
    assert (again.files, again.indexed, again.already) == (len(CAPTURES), 0, len(CAPTURES))
    assert sum(c['frames'] for c in caps) == sum(c.frames for c in db.captures())


def test_captures_equal_cli(dbs, cli):
    for db in dbs:
        want = cli_json(cli, 'captures', '--db', db, '--format', 'json')
        got = [c.to_dict() for c in traceflow.open(db).captures()]
        assert got == want


@pytest.mark.parametrize('bidirectional', [False, True])
def test_index_equals_cli_query(dbs, cli, bidirectional):
    extra = ['--bidirectional'] if bidirectional else []
    for db in dbs:
        tdb = traceflow.open(db)
        want = cli_json(cli, 'query', '--db', db, '--format', 'json', *extra)
        got = [dict(e.to_dict(), index=list(e.index)) for e in tdb.index(bidirectional=bidirectional)]
        assert got == want
        for name in ('http-simple-get.pcap', 'modbus.pcap'):
            want = cli_json(cli, 'query', '--db', db, '--capture', name, '--format', 'json', *extra)
            got = [dict(e.to_dict(), index=list(e.index)) for e in tdb.index(name, bidirectional=bidirectional)]
            assert got == want


@pytest.mark.parametrize('filt', FILTERS)
@pytest.mark.parametrize('sort', ['time', 'bytes', 'packets', 'duration'])
def test_flows_equal_cli(dbs, cli, filt, sort):
    for db in dbs:
        want = cli_jsonl(cli, 'flows', '--db', db, '--format', 'jsonl', '--sort', sort, filt)
        rows = traceflow.open(db).flows(filt, sort=sort)
        assert [r.to_dict() for r in rows] == want
        assert [json.loads(r.to_json()) for r in rows] == want
        assert traceflow.open(db).count(filt) == len(want)
        want5 = cli_jsonl(cli, 'flows', '--db', db, '--format', 'jsonl', '--sort', sort, '--limit', '5', filt)
        assert [r.to_dict() for r in traceflow.open(db).flows(filt, sort=sort, limit=5)] == want5


@pytest.mark.parametrize('filt', FILTERS[:4])
def test_connections_equal_cli(dbs, cli, filt):
    for db in dbs:
        want = cli_jsonl(cli, 'connections', '--db', db, '--format', 'jsonl', filt)
        got = [c.to_dict() for c in traceflow.open(db).connections(filt)]
        assert [dict(g, flows=list(g['flows'])) for g in got] == want
        assert traceflow.open(db).count(filt, connections=True) == len(want)


def test_connections_need_building_as_the_cli_says(tmp_path, cli):
    db = traceflow.open(str(tmp_path / 'noconn.db'))
    db.ingest(paths()[:2])
    with pytest.raises(traceflow.TraceflowError) as raised:
        list(db.connections())
    stderr = cli('connections', '--db', db.path, check=False).stderr.decode()
    assert str(raised.value) in stderr and 'ingest --connections' in str(raised.value)
    assert db.ingest([], connections=True).connections_built == 2
    want = cli_jsonl(cli, 'connections', '--db', db.path, '--format', 'jsonl')
    assert [dict(c.to_dict(), flows=list(c.flows)) for c in db.connections()] == want and want


def test_rows_are_immutable_with_cli_fields(dbs):
    r = next(iter(traceflow.open(dbs[0]).flows('port 80')))
    assert list(r.to_dict()) == list(traceflow.Flow.FIELDS)
    assert r.label == r.to_dict()['label'] and isinstance(r.sport, int)
    with pytest.raises(AttributeError):
        r.label = 'x'
    c = next(iter(traceflow.open(dbs[0]).connections()))
    assert c.orig_h == c.to_dict()['orig_h']
    with pytest.raises(AttributeError):
        c.orig_h = 'x'
    cap = traceflow.open(dbs[0]).captures()[0]
    with pytest.raises(AttributeError):
        cap.name = 'x'


def test_iteration_streams(dbs):
    it = iter(traceflow.open(dbs[0]).flows())
    first = next(it)
    it.close()
    assert list(it) == []
    assert first == next(iter(traceflow.open(dbs[0]).flows()))


@pytest.mark.parametrize('fmt', ['pcap', 'pcapng', 'json', 'plist', 'tree', 'text'])
def test_dump_equals_cli_query_flow(dbs, cli, tmp_path, fmt):
    db = dbs[0]
    labels = [e.label for e in traceflow.open(db).index('http-simple-get.pcap')]
    for i, label in enumerate(labels):
        for both in (False, True):
            mine, theirs = tmp_path / f'{i}{both}.py', tmp_path / f'{i}{both}.cli'
            traceflow.open(db).dump(label, mine, format=fmt, both=both, capture='http-simple-get.pcap')
            cli('query', '--db', db, '--capture', 'http-simple-get.pcap', '--flow', label, '--format', fmt,
                '-o', str(theirs), *(['--both'] if both else []))
            assert mine.read_bytes() == theirs.read_bytes(), (label, both)


@pytest.mark.parametrize('pcapng', [False, True])
def test_export_pcap_equals_cli_flows_pcap(dbs, cli, tmp_path, pcapng):
    # A pcap holds one link type: the wider filter spans Ethernet and NULL captures, so only pcapng takes it.
    filters = ['capture http-simple-get.pcap and port 80', 'dst port 502']
    for filt in filters + (['port 80', 'host 10.0.0.1 or port 443'] if pcapng else []):
        mine, theirs = tmp_path / 'py.out', tmp_path / 'cli.out'
        frames, flows = traceflow.open(dbs[0]).export_pcap(filt, mine, pcapng=pcapng)
        cli('flows', '--db', dbs[0], filt, '--pcapng' if pcapng else '--pcap', str(theirs))
        assert mine.read_bytes() == theirs.read_bytes()
        assert flows == traceflow.open(dbs[0]).count(filt) and frames > 0


def test_bad_filter_raises_filter_error_with_the_cli_caret(dbs, cli):
    for filt in ('port x', 'host 10.0.0.1 and', 'bytes > lots'):
        with pytest.raises(traceflow.FilterError) as raised:
            traceflow.open(dbs[0]).flows(filt)
        e = raised.value
        assert isinstance(e, traceflow.TraceflowError)
        assert e.text == filt and e.caret.strip() and set(e.caret.strip()) == {'^'}
        assert e.column == len(e.caret) - len(e.caret.lstrip()) + 1
        stderr = cli('flows', '--db', dbs[0], filt, check=False).stderr.decode()
        assert f'bad filter at column {e.column}:' in stderr, stderr
        assert '  ' + e.caret in stderr.splitlines(), stderr
        assert e.message in stderr


def test_errors_are_clear(dbs, tmp_path):
    with pytest.raises(traceflow.TraceflowError, match='no-such-label'):
        traceflow.open(dbs[0]).dump('no-such-label', tmp_path / 'x.pcap')
    assert not (tmp_path / 'x.pcap').exists()
    with pytest.raises(ValueError, match='sort'):
        traceflow.open(dbs[0]).flows(sort='size')
    with pytest.raises(traceflow.TraceflowError):
        traceflow.open(str(tmp_path / 'missing.db')).captures()


def test_to_pandas_and_arrow(dbs, cli):
    """Both frames hold the CLI's JSON rows, column for column, for flows and connections (scripts/test.sh's
    virtual environment has pandas and pyarrow; elsewhere the test is skipped without them)."""
    pandas = pytest.importorskip('pandas')
    pyarrow = pytest.importorskip('pyarrow')
    db = traceflow.open(dbs[0])
    for kind, rows in (('flows', db.flows('port 80')), ('connections', db.connections('port 80'))):
        want = cli_json(cli, kind, 'port 80', '--db', dbs[0], '--format', 'json')
        assert want, kind
        fields = list(want[0].keys())
        df = rows.to_pandas()
        assert isinstance(df, pandas.DataFrame)
        assert list(df.columns) == fields, kind
        # A connection's flows are a tuple in the row (rows are immutable), a list in JSON.
        got = [{k: list(v) if isinstance(v, tuple) else v for k, v in r.items()} for r in df.to_dict('records')]
        assert got == want, kind
        table = rows.to_arrow()
        assert isinstance(table, pyarrow.Table)
        assert table.column_names == fields, kind
        assert table.to_pylist() == want, kind


def test_ctrl_c_interrupts_an_ingest_and_rolls_back(tmp_path, cli):
    """SIGINT 0.3 s into an ingest of a capture that takes seconds (`traceflow sample`, 100k conversations)
    raises KeyboardInterrupt before the ingest ends, and the capture is rolled back: the database holds none."""
    big = tmp_path / 'big.pcap'
    cli('sample', '--conversations', '100000', str(big))
    db = traceflow.open(str(tmp_path / 'int.db'))
    timer = threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT))
    started = time.monotonic()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        db.ingest(big)
    timer.cancel()
    assert time.monotonic() - started < 5
    assert db.captures() == []
    # The database works on: the same ingest, not interrupted, indexes it whole.
    assert db.ingest(big).flows == 200000
