"""The docs site: numbers come from results files, references resolve, the CLI page and the notebook are
current, the site builds strict, and every page works in a real headless browser."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlparse
from urllib.request import urlopen

import pytest
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(
    p
    for p in DOCS.rglob("*.md")
    if p.name != "cli.md" and not {"results", "api"} & set(p.relative_to(DOCS).parts)
)
README = ROOT / "README.md"
SNIPPET = re.compile(r'^--8<-- "([^"]+)"\s*$', re.MULTILINE)
IMAGE = re.compile(r"!\[[^\]]*\]\(([^)]+)\)")
# A measured-looking number: a decimal, or anything followed by %.
NUMBER = re.compile(r"(?<![\w.])\d+(?:,\d{3})*\.\d+%?|(?<![\w.])\d+%")


def _results_text() -> str:
    return "\n".join(p.read_text() for p in (DOCS / "results").rglob("*") if p.is_file())


def _prose(page: Path) -> str:
    """A page without its included snippets and code blocks (commands are not claims)."""
    text = SNIPPET.sub("", page.read_text())
    return re.sub(r"```.*?```", "", text, flags=re.DOTALL)


@pytest.mark.parametrize("page", [*PAGES, README], ids=lambda p: p.name)
def test_numbers_in_prose_come_from_the_results_files(page: Path) -> None:
    results = _results_text()
    for number in NUMBER.findall(_prose(page)):
        assert number in results, f"{page.name} quotes {number}, which no file under docs/results contains"


WORKFLOW = ROOT / ".github" / "workflows" / "docs.yml"


def _check_workflow(path: Path) -> subprocess.CompletedProcess[str]:
    """GitHub's workflow schema, as check-jsonschema ships it (no network)."""
    command = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows"]
    return subprocess.run([*command, str(path)], capture_output=True, text=True, check=False)


def test_the_pages_workflow_is_a_valid_workflow_that_builds_strict(tmp_path: Path) -> None:
    result = _check_workflow(WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr
    text = WORKFLOW.read_text()
    assert "mkdocs build --strict" in text and "actions/deploy-pages" in text
    broken = tmp_path / "docs.yml"  # the check can fail: a job without runs-on is not a workflow
    broken.write_text(text.replace("    runs-on: ubuntu-latest\n", "", 1))
    assert _check_workflow(broken).returncode != 0


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_included_tables_and_figures_exist(page: Path) -> None:
    text = page.read_text()
    for target in SNIPPET.findall(text):
        assert (DOCS / target).is_file(), f"{page.name} includes missing {target}"
    for target in IMAGE.findall(text):
        assert (DOCS / target).is_file(), f"{page.name} shows missing {target}"


def test_cli_reference_is_generated_from_the_app() -> None:
    from digitnet.report import cli_reference

    assert (DOCS / "cli.md").read_text() == cli_reference(), "docs/cli.md is stale: run 'digitnet report'"


def test_report_command_line_reproduces_the_spec() -> None:
    from digitnet.report import command_line, experiments

    optimizer = next(e for e in experiments(False, None) if e.name == "optimizer")
    line = command_line(optimizer.spec)
    assert line.startswith("digitnet compare optimizer ") and "--models mlp,bn,bn-dropout" in line
    assert (DOCS / "results" / "optimizer" / "command.md").read_text().count(line) == 1


def experiments_of_the_site() -> list[Any]:
    from digitnet.report import experiments

    return experiments(False, None)


@pytest.mark.parametrize("experiment", [e.name for e in experiments_of_the_site()])
def test_each_pages_command_trains_exactly_the_pages_runs(
    experiment: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Typed by a student, the command a page shows plans the same runs (same config keys) as the
    report's own spec: grids, --by and variants included."""
    import shlex

    import digitnet.sweep
    from digitnet.cli import app
    from digitnet.report import command_line
    from digitnet.sweep import plan_sweep, run_configs

    spec = next(e for e in experiments_of_the_site() if e.name == experiment).spec
    seen = []

    def capture(spec: object, *args: object, **kwargs: object) -> None:
        seen.append(spec)
        raise SystemExit(0)

    monkeypatch.setattr(digitnet.sweep, "run_sweep", capture)
    CliRunner().invoke(app, shlex.split(command_line(spec))[1:])
    assert len(seen) == 1

    def keys(planned: object) -> list[str]:
        return [config.key() for _, _, config in run_configs(planned, plan_sweep(planned))]  # type: ignore[arg-type]

    assert keys(seen[0]) == keys(spec)


@pytest.mark.slow
def test_walkthrough_notebook_executes(tmp_path: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.read(DOCS / "notebooks" / "walkthrough.ipynb", as_version=4)
    assert any(cell.get("outputs") for cell in notebook.cells), (
        "stored outputs missing: scripts/build_notebook.py"
    )
    client = nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    errors = [o for c in notebook.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors


def test_site_builds_strict(built_site: Path) -> None:
    assert (built_site / "index.html").is_file()
    assert (built_site / "learning-rate" / "index.html").is_file()
    assert (built_site / "notebooks" / "walkthrough" / "index.html").is_file()


def _browser(*extra_flags: str, window: str = "1280,900"):  # type: ignore[no-untyped-def]
    """Headless Debian chromium through chromedriver; never a downloaded browser. ``extra_flags`` go to
    chromium as they are (the Playground's test makes every host but 127.0.0.1 unresolvable)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        webdriver = None  # type: ignore[assignment]
    if not chromium or not driver_path or webdriver is None:
        if os.environ.get("DIGITNET_REQUIRE_BROWSER"):
            pytest.fail("chromium, chromedriver and selenium are required (DIGITNET_REQUIRE_BROWSER is set)")
        pytest.skip("no chromium/chromedriver/selenium on this machine")

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--window-size={window}",
        *extra_flags,
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=driver_path), options=options)


@pytest.mark.slow
def test_every_page_works_in_a_browser(built_site: Path, served_site: str, tmp_path: Path) -> None:
    screenshot = tmp_path / "home.png"  # under pytest's tmp, never the repository
    pages = sorted(p.relative_to(built_site) for p in built_site.rglob("index.html") if "404" not in str(p))
    assert len(pages) >= 15
    driver = _browser()
    try:
        internal_links: set[str] = set()
        for page in pages:
            url = urljoin(served_site, str(page.parent) + "/" if str(page.parent) != "." else "")
            driver.get(url)
            broken = driver.execute_script(
                "return Array.from(document.images)"
                ".filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src);"
            )
            assert broken == [], f"{url}: images did not load: {broken}"
            errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
            assert errors == [], f"{url}: console errors: {errors}"
            # Nothing a reader must scroll sideways to see: every table and code block fits its column.
            # (Material scrolls a wide table in .md-typeset__scrollwrap, a code block in its pre/code.)
            cut = driver.execute_script(
                "return Array.from(document.querySelectorAll("
                "'article .md-typeset__scrollwrap, article table, article pre, article pre > code'))"
                ".filter(e => e.scrollWidth > e.clientWidth + 1)"
                ".map(e => location.pathname + ' ' + e.tagName + ': ' + e.innerText.slice(0, 60));"
            )
            assert cut == [], f"{url}: cut off on the right: {cut}"
            # A figure shown at the column's width opens at full size on a click (its labels are small)
            unzoomable = driver.execute_script(
                "return Array.from(document.querySelectorAll('article img'))"
                ".filter(i => !(i.closest('a.glightbox') && i.closest('a.glightbox').href === i.src))"
                ".map(i => i.src);"
            )
            assert unzoomable == [], f"{url}: figures that do not open at full size: {unzoomable}"
            for href in driver.execute_script("return Array.from(document.links).map(a => a.href);"):
                if urlparse(href).netloc == urlparse(served_site).netloc:
                    internal_links.add(href.split("#")[0])
            if page == Path("index.html"):
                driver.save_screenshot(str(screenshot))
        for link in sorted(internal_links):
            with urlopen(link) as response:  # raises on 404
                assert response.status == 200, link
    finally:
        driver.quit()
    assert screenshot.stat().st_size > 10_000


def test_api_pages_read_as_markdown_and_list_config_fields(built_site: Path) -> None:
    """Cross-references render as links (no raw Sphinx roles) and dataclass fields are listed."""
    import dataclasses

    from digitnet.configs import TrainConfig

    for page in (built_site / "api").rglob("index.html"):
        text = page.read_text()
        for role in (":func:", ":class:", ":mod:", ":data:", ":attr:"):
            assert role not in text, f"{page}: raw {role}"
    configs_page = (built_site / "api" / "configs" / "index.html").read_text()
    for field in dataclasses.fields(TrainConfig):
        assert f'id="digitnet.configs.TrainConfig.{field.name}"' in configs_page, field.name
