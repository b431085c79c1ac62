"""traceflow serve in a real browser: Playwright drives Debian's chromium over the page on a database of the
conformance corpus, and checks what it shows against the command line's answers for the same filter.

Run by tests/it/serve.rs (`cargo test --release`) with the venv scripts/test.sh makes; it passes the binary
(TRACEFLOW_BIN), the database (TRACEFLOW_TEST_DB) and where screenshots go (TRACEFLOW_SHOTS).
"""

import json
import os
import subprocess
import sys
from urllib.parse import parse_qs, urlparse

from playwright.sync_api import sync_playwright

BIN = os.environ["TRACEFLOW_BIN"]
DB = os.environ["TRACEFLOW_TEST_DB"]
SHOTS = os.environ["TRACEFLOW_SHOTS"]
CHECKS = []


def cli(*args, binary=False):
    r = subprocess.run([BIN, "--db", DB, *args], capture_output=True, stdin=subprocess.DEVNULL)
    return r.stdout if binary else r.stdout.decode(), r.stderr.decode(), r.returncode


def cli_count(f, view="flows"):
    out, err, code = cli(view, f, "--count")
    assert code == 0, err
    return int(out)


def cli_rows(*args):
    out, err, code = cli("flows", *args, "--format", "jsonl")
    assert code == 0, err
    return [json.loads(l) for l in out.splitlines()]


def check(name, ok, detail=""):
    CHECKS.append((name, ok, detail))
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else ": " + str(detail)), flush=True)


def search(page, f):
    page.fill("#filter", f)
    page.press("#filter", "Enter")
    wait_table(page)


def wait_table(page):
    page.wait_for_function("() => document.querySelector('#count') && document.querySelector('#count').dataset.count !== undefined")
    page.wait_for_selector("#rows tbody")


def table(page):
    """The rows of the table: a dict per row, by column name."""
    return page.eval_on_selector_all(
        "#rows tbody tr",
        "trs => trs.map(tr => Object.fromEntries([...tr.querySelectorAll('td[data-col]')].map(td => [td.dataset.col, td.textContent])))",
    )


def main():
    server = subprocess.Popen([BIN, "--db", DB, "serve", "--bind", "127.0.0.1:0"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    url = server.stdout.readline().strip()
    problems = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            ctx = browser.new_context(accept_downloads=True, viewport={"width": 1500, "height": 950})
            page = ctx.new_page()
            page.on("console", lambda m: problems.append(m.type + ": " + m.text) if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: problems.append("pageerror: " + str(e)))
            page.goto(url)
            check("the token leaves the address bar", "token" not in page.url, page.url)
            wait_table(page)

            # The table's count is `flows --count`, its rows the command line's, for three filters.
            for f in ["port 80", "host 192.168.1.1 or rst", "packets > 10 and not port 443"]:
                search(page, f)
                want = cli_count(f)
                got = int(page.get_attribute("#count", "data-count"))
                check(f"count of {f!r}", got == want, (got, want))
                rows = table(page)
                check(f"rows shown for {f!r}", len(rows) == min(want, 100), (len(rows), want))
                if want <= 100:
                    mine = sorted((r["src"], r["sport"], r["dst"], r["dport"], r["first_time"]) for r in rows)
                    theirs = sorted((r["src"], str(r["sport"]), r["dst"], str(r["dport"]), r["first_time"]) for r in cli_rows(f))
                    check(f"rows of {f!r} are the command line's", mine == theirs)
            page.screenshot(path=os.path.join(SHOTS, "flows.png"), full_page=False)

            # A bad filter: the parser's message and caret, as the command line prints them.
            search_bad = "host 10.0.0.1 and port x"
            seen = len(problems)
            page.fill("#filter", search_bad)
            page.press("#filter", "Enter")
            page.wait_for_selector("#filter-error:not([hidden]) #caret")
            caret = page.text_content("#caret")
            _, err, code = cli("flows", search_bad)
            check("a bad filter shows the caret", code == 2 and caret.strip() == "^" and ("  " + caret + "\n") in err + "\n",
                  (caret, err))
            check("and the message", page.text_content("#filter-error .msg") in err)
            # The browser logs the answers' status 400 itself; those are the point of this step.
            problems[seen:] = [m for m in problems[seen:] if "status of 400" not in m]

            # Sorting: a click on `bytes` orders by bytes, as `--sort bytes`.
            search(page, "")
            page.click("th[data-col=bytes] a")
            page.wait_for_function("() => location.search.includes('sort=bytes')")
            wait_table(page)
            rows = table(page)
            top = cli_rows("", "--sort", "bytes", "--limit", "100")
            check("sorted by bytes as --sort bytes", [r["bytes"] for r in rows] == [str(r["bytes"]) for r in top],
                  [r["bytes"] for r in rows][:5])

            # Paging: next gives rows 101-200 of the same order, previous the first page again.
            first = table(page)
            page.click("#next")
            page.wait_for_function("() => document.querySelector('#page-no').textContent === 'page 2'")
            wait_table(page)
            second = table(page)
            top = cli_rows("", "--sort", "bytes", "--limit", "200")
            check("page 2 is rows 101-200", [r["bytes"] for r in second] == [str(r["bytes"]) for r in top[100:200]])
            page.click("#prev")
            page.wait_for_function("() => document.querySelector('#page-no').textContent === 'page 1'")
            wait_table(page)
            check("previous gives page 1 again", table(page) == first)

            # Drag on the histogram: after/before enter the filter and the rows follow.
            page.goto(url.split("/?")[0] + "/?filter=" + "port%2080")
            wait_table(page)
            page.wait_for_selector("#hist .u-over")
            before_count = int(page.get_attribute("#count", "data-count"))
            box = page.locator("#hist .u-over").bounding_box()
            y = box["y"] + box["height"] / 2
            page.mouse.move(box["x"] + box["width"] * 0.30, y)
            page.mouse.down()
            page.mouse.move(box["x"] + box["width"] * 0.75, y, steps=8)
            page.mouse.up()
            page.wait_for_function("() => new URLSearchParams(location.search).get('filter').includes('after')")
            wait_table(page)
            f = parse_qs(urlparse(page.url).query)["filter"][0]
            got = int(page.get_attribute("#count", "data-count"))
            check("a drag writes after and before", "after " in f and "before " in f and f.startswith("port 80 and"), f)
            check("and the rows follow it", got == cli_count(f) and got < before_count, (got, before_count))
            check("the filter box shows it", page.input_value("#filter") == f)

            # The URL reproduces the page.
            page.goto(url.split("/?")[0] + "/?filter=port%2080&sort=packets&cols=src,dst,dport,packets")
            wait_table(page)
            shown = page.inner_text("#rows")
            again = ctx.new_page()
            again.goto(page.url)
            wait_table(again)
            check("a link reproduces the page", again.inner_text("#rows") == shown and again.input_value("#filter") == "port 80")
            heads = again.eval_on_selector_all("#rows th[data-col]", "ths => ths.map(t => t.dataset.col)")
            check("with its columns", heads == ["src", "dst", "dport", "packets"], heads)
            again.close()

            # The pcapng download is the command line's, byte for byte.
            with page.expect_download() as d:
                page.click("#dl-pcapng")
            path = d.value.path()
            mine = open(path, "rb").read()
            theirs, _, _ = cli("flows", "port 80", "--pcapng", "-", binary=True)
            check("the pcapng download is `flows FILTER --pcapng -`", mine == theirs and len(mine) > 1000, (len(mine), len(theirs)))

            # A connection's page: its ladder has one arrow per frame.
            page.goto(url.split("/?")[0] + "/?view=connections&filter=port%2021")
            wait_table(page)
            page.click("#rows tbody tr:first-child a.open")
            page.wait_for_selector("#ladder")
            arrows = page.locator("#ladder g.frame line.arrow").count()
            frames = page.locator("#frames tr").count() - 1
            fields = page.eval_on_selector_all("#fields tr", "trs => Object.fromEntries(trs.map(t => [t.cells[0].textContent, t.cells[1].textContent]))")
            want = int(fields["orig_pkts"]) + int(fields["resp_pkts"])
            check("the ladder has one arrow per frame", arrows == frames == want and want > 0, (arrows, frames, want))
            resp = page.locator("#ladder g.frame.resp").count()
            check("both directions drawn", resp == int(fields["resp_pkts"]), resp)
            page.screenshot(path=os.path.join(SHOTS, "connection.png"), full_page=False)

            # A flow's page, from the flows table.
            page.goto(url.split("/?")[0] + "/?filter=port%2080")
            wait_table(page)
            page.click("#rows tbody tr:first-child a.open")
            page.wait_for_selector("#ladder")
            check("a flow page shows its frames", page.locator("#ladder g.frame").count() == page.locator("#frames tr").count() - 1 > 0)
            check("and the decoded tree", page.text_content("#tree").startswith("Frame "))

            # The conn_state panel of the connections view: `connections --group-by conn-state`'s figures; a click
            # on a state filters the table to it.
            page.goto(url.split("/?")[0] + "/?view=connections&group=conn-state")
            wait_table(page)
            page.wait_for_selector("#group-rows td[data-col=conn_state]")
            shown = page.eval_on_selector_all(
                "#group-rows tr:has(td)",
                "trs => trs.map(tr => Object.fromEntries([...tr.querySelectorAll('td[data-col]')].map(td => [td.dataset.col, td.textContent])))",
            )
            out, err, code = cli("connections", "--group-by", "conn-state", "--limit", "20", "--format", "json")
            want = [{k: str(v) for k, v in r.items()} for r in json.loads(out)] if code == 0 else err
            check("the conn_state panel is `connections --group-by conn-state`", shown == want and len(shown) >= 3,
                  (shown[:2], want[:2] if isinstance(want, list) else want))
            page.locator("#groups").screenshot(path=os.path.join(SHOTS, "groups.png"))
            state = shown[1]["conn_state"]
            page.click(f"#group-rows tr:nth-child(3) td[data-col=conn_state] a")
            page.wait_for_function(f"() => new URLSearchParams(location.search).get('filter') === 'conn-state {state}'")
            wait_table(page)
            got = int(page.get_attribute("#count", "data-count"))
            rows = table(page)
            check("a click on a state filters the table", got == cli_count(f"conn-state {state}", "connections")
                  == int(shown[1]["connections"]) and rows and all(r["conn_state"] == state for r in rows),
                  (got, shown[1]))
            check("the filter box says so", page.input_value("#filter") == f"conn-state {state}")

            # The captures page.
            page.goto(url.split("/?")[0] + "/?page=captures")
            page.wait_for_selector("#captures tr:nth-child(2)")
            n = page.locator("#captures tr").count() - 1
            out, _, _ = cli("captures", "--format", "json")
            check("the captures page lists every capture", n == len(json.loads(out)), n)
            page.screenshot(path=os.path.join(SHOTS, "captures.png"), full_page=False)

            check("no console error and no CSP violation", not problems, problems)
            browser.close()
    finally:
        server.send_signal(2)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            check("serve stops on Ctrl-C", False)
    failed = [c for c in CHECKS if not c[1]]
    if failed:
        print(f"browser: {len(failed)} of {len(CHECKS)} checks failed")
        sys.exit(1)
    print(f"browser: all checks passed ({len(CHECKS)})")


if __name__ == "__main__":
    main()
