"""Every conformance capture through ``traceflow.extract(...).trace.tcp``: the labels, frame lists and their order
equal expected/NAME.json (made from tshark's fields, independent of traceflow), and each Index's fpout names its
dump file, which exists."""

import json
import os

import pytest

import traceflow

from conftest import conformance_dir

NAMES = sorted(n[:-len('.json')] for n in os.listdir(os.path.join(conformance_dir(), 'expected')))


def test_the_corpus_is_whole():
    assert len(NAMES) == 205


@pytest.mark.parametrize('name', NAMES)
def test_extract_equals_expected(name, tmp_path):
    with open(os.path.join(conformance_dir(), 'expected', name + '.json')) as f:
        want = json.load(f)
    out = tmp_path / 'flows'
    e = traceflow.extract(fin=os.path.join(conformance_dir(), 'captures', name), extension=False, nofile=True,
                          trace=True, tcp=True, trace_fout=str(out))
    assert e.length == want['frames']
    got = [{'label': i.label, 'index': list(i.index)} for i in e.trace.tcp]
    assert got == [{'label': w['label'], 'index': w['index']} for w in want['flows']]
    for i in e.trace.tcp:
        assert i.fpout == f'{out}/{i.label}.pcap'
        assert os.path.isfile(i.fpout)


def test_a_path_with_dot_dot_is_found(tmp_path):
    """The capture is looked up under the path it was ingested from, however it is spelled (`a/../b`)."""
    name = 'http-simple-get.pcap'
    captures = os.path.join(conformance_dir(), 'captures')
    fin = os.path.join(captures, '..', 'captures', name)
    e = traceflow.extract(fin=fin, nofile=True, trace=True, tcp=True, trace_fout=str(tmp_path / 'd'))
    with open(os.path.join(conformance_dir(), 'expected', name + '.json')) as f:
        assert [i.label for i in e.trace.tcp] == [w['label'] for w in json.load(f)['flows']]
