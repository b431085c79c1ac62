"""Shared fixtures of the Python package's tests: the conformance corpus (../shared/conformance beside the
repository, or $TRACEFLOW_CONFORMANCE), its manifest, and the traceflow binary the native API is compared with
($TRACEFLOW_BIN, else target/release/traceflow)."""

import csv
import os
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def conformance_dir():
    return os.environ.get('TRACEFLOW_CONFORMANCE') or os.path.join(os.path.dirname(REPO), 'shared', 'conformance')


def manifest():
    """The rows of manifest.tsv, by capture name."""
    with open(os.path.join(conformance_dir(), 'manifest.tsv'), newline='') as f:
        return {r['capture']: r for r in csv.DictReader(f, delimiter='\t')}


@pytest.fixture(scope='session')
def corpus():
    d = conformance_dir()
    if not os.path.isdir(os.path.join(d, 'captures')):
        pytest.fail(f'the conformance corpus is missing: {d} (set TRACEFLOW_CONFORMANCE)')
    return d


@pytest.fixture(scope='session')
def cli():
    exe = os.environ.get('TRACEFLOW_BIN') or os.path.join(REPO, 'target', 'release', 'traceflow')
    if not os.path.exists(exe):
        pytest.fail(f'no traceflow binary at {exe}: run `cargo build --release` or set TRACEFLOW_BIN')

    def run(*args, check=True):
        r = subprocess.run([exe, *args], capture_output=True, timeout=600)
        if check and r.returncode != 0:
            raise AssertionError(f'traceflow {" ".join(args)} exited {r.returncode}: {r.stderr.decode()[-2000:]}')
        return r
    return run


def pytest_configure(config):
    # PyPCAPKit logs every frame it cannot decode; only the tests' own output matters here.
    import logging  # pylint: disable=import-outside-toplevel
    logging.getLogger('pcapkit').disabled = True
