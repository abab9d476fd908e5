"""The HTML shell shared by every report: one self-contained file, plotly.js inlined.

Each figure is stored as JSON in a ``<script type="application/json" data-figure=ID>`` and
drawn by one inline script. When every ``Plotly.newPlot`` promise has resolved the page sets
``document.body.dataset.chartsDrawn`` (and ``chartsExpected`` up front); page errors
(``window.onerror``, unhandled rejections, ``console.error``) are written into
``#report-errors`` and ``document.body.dataset.errors``. Once drawn, the page also records its
width (``data-scroll-width``, ``data-view-width``) and the ids of sections wider than their
box (``data-overflow``). The browser test reads these.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import plotly
import plotly.io as pio
from plotly.offline import get_plotlyjs

CSS = """
body{font-family:-apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0;color:#1f2933;background:#f7f8fa}
header{background:#14213d;color:#fff;padding:14px 24px}
header h1{margin:0;font-size:20px} header .sub{opacity:.85;font-size:13px;margin-top:4px}
main{padding:12px 24px;max-width:1500px}
section{background:#fff;border:1px solid #e1e4e8;border-radius:6px;margin:12px 0;padding:10px 14px}
h2{font-size:16px;margin:4px 0 10px}
table{border-collapse:collapse;font-size:13px} td,th{border:1px solid #e1e4e8;padding:3px 8px;text-align:right}
th{background:#f0f2f5} td.l,th.l{text-align:left}
.banner{padding:10px 14px;border-radius:6px;margin:12px 0;font-weight:600}
.bad{background:#fde2e1;color:#8a1c1c;border:1px solid #f5a3a0}
.good{background:#e3f6e8;color:#17603a;border:1px solid #9fd8b0}
.note{font-size:12px;color:#52606d}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;background:#dde3ea;color:#14213d}
.badge.real{background:#c9f0d3}.badge.reconstructed{background:#ffe7b3}.badge.simulated{background:#e6d9ff}
pre{background:#f4f5f7;padding:8px;overflow:auto;font-size:12px;max-height:420px}
.grid td a{color:inherit;text-decoration:none;display:block}
.grid td{min-width:92px;text-align:center}
.warn{background:#fff4d6;color:#7a4b00;border:1px solid #f2c96b}
a.warn{border:0;background:none;font-weight:600;text-decoration:none}
.legend{display:flex;flex-wrap:wrap;gap:6px 18px;font-size:12px;margin:4px 0 8px}
.key{display:inline-flex;align-items:center;gap:6px}
.swatch{display:inline-block;width:16px;height:12px;border:1px solid #9aa5b1;border-radius:2px}
.swatch.scale{width:90px}
.pill{display:inline-block;padding:0 6px;border-radius:8px;white-space:nowrap}
h3{font-size:14px;margin:12px 0 6px}
td{white-space:nowrap} td.wrap{white-space:normal} th{white-space:normal;vertical-align:bottom}
table.kv td:last-child{white-space:normal;text-align:left;max-width:1000px}
table.wrap2 td:nth-child(2),table.wrap9 td:nth-child(9){white-space:normal;text-align:left;min-width:220px}
table.cells td,table.cells th{padding:3px 6px}
details summary{cursor:pointer;font-size:13px;color:#334e68;margin:4px 0}
#report-errors:empty{display:none}
#report-errors{background:#fde2e1;color:#8a1c1c;white-space:pre-wrap}
.flex{display:flex;gap:16px;flex-wrap:wrap;align-items:flex-start}
"""

ERROR_HOOK = """
(function(){
  var errors=[];
  function record(msg){
    errors.push(String(msg));
    var box=document.getElementById('report-errors');
    if(box){box.textContent=errors.join('\\n');}
    if(document.body){document.body.dataset.errors=String(errors.length);}
  }
  window.__reportErrors=errors; window.__recordReportError=record;
  window.addEventListener('error',function(e){record('error: '+(e.message||e));});
  window.addEventListener('unhandledrejection',function(e){record('unhandled rejection: '+(e.reason&&e.reason.message||e.reason));});
  var orig=console.error;
  console.error=function(){record('console.error: '+Array.prototype.join.call(arguments,' '));return orig.apply(console,arguments);};
})();
"""

DRAW = """
(function(){
  var record=window.__recordReportError;
  document.body.dataset.errors=String(window.__reportErrors.length);
  var box=document.getElementById('report-errors');
  if(box){box.textContent=window.__reportErrors.join('\\n');}
  var specs=Array.prototype.slice.call(document.querySelectorAll('script[data-figure]'));
  document.body.dataset.chartsExpected=String(specs.length);
  document.body.dataset.chartsDrawn='0';
  if(typeof Plotly==='undefined'){record('plotly.js did not load');return;}
  var drawn=0;
  var jobs=specs.map(function(s){
    var spec=JSON.parse(s.textContent);
    var div=document.getElementById(s.dataset.figure);
    var config=Object.assign({responsive:true,displaylogo:false},spec.config||{});
    return Plotly.newPlot(div,spec.data,spec.layout,config).then(function(gd){
      if(s.dataset.links==='1'){
        gd.on('plotly_click',function(ev){
          var p=ev&&ev.points&&ev.points[0]; var link=p&&p.customdata;
          if(Array.isArray(link)){link=link[0];}
          if(link){window.location.href=link;}
        });
      }
      if(gd.querySelector('.main-svg')){drawn+=1;div.dataset.drawn='1';}
      else{record('figure '+s.dataset.figure+' produced no SVG');}
    });
  });
  function measure(){
    var root=document.documentElement;
    document.body.dataset.scrollWidth=String(root.scrollWidth);
    document.body.dataset.viewWidth=String(root.clientWidth);
    var wide=[];
    Array.prototype.forEach.call(document.querySelectorAll('section'),function(sec,i){
      if(sec.scrollWidth>sec.clientWidth+1){wide.push(sec.id||('section-'+i));}
    });
    document.body.dataset.overflow=wide.join(',');
  }
  Promise.all(jobs).then(function(){document.body.dataset.chartsDrawn=String(drawn);measure();})
    .catch(function(e){record('plot failed: '+(e&&e.message||e));});
})();
"""


@lru_cache(maxsize=1)
def plotly_js() -> str:
    """The plotly.js bundle shipped with the plotly package (about 4.6 MB, minified)."""
    return get_plotlyjs()


def write_plotly_asset(directory: Path) -> Path:
    """Write ``plotly.min.js`` into ``directory`` (once) for pages that share it."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "plotly.min.js"
    if not path.exists() or path.stat().st_size != len(plotly_js().encode()):
        path.write_text(plotly_js())
    return path


def _script_json(text: str) -> str:
    # a JSON string inside <script> must not contain "</" (would end the element)
    return text.replace("</", "<\\/")


def figure_block(div_id: str, fig: Any, links: bool = False, height: int | None = None) -> str:
    """HTML for one figure: an empty div plus its JSON spec."""
    spec = pio.to_json(fig, validate=False, remove_uids=True)
    style = f' style="height:{height}px"' if height else ""
    return (
        f'<div id="{div_id}" class="chart"{style}></div>\n'
        f'<script type="application/json" data-figure="{div_id}" data-links="{1 if links else 0}">'
        f"{_script_json(spec)}</script>\n"
    )


def page(title: str, subtitle: str, body: str, plotlyjs: str = "inline") -> str:
    """A complete HTML document. ``plotlyjs`` is ``"inline"`` (self-contained) or the
    relative URL of a local ``plotly.min.js`` (used by the many cell pages of a stress run)."""
    if plotlyjs == "inline":
        lib = f"<script>{plotly_js()}</script>"
    else:
        lib = f'<script src="{html.escape(plotlyjs)}"></script>'
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
        f"<title>{html.escape(title)}</title>\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<style>{CSS}</style>\n<script>{ERROR_HOOK}</script>\n{lib}\n</head>\n<body>\n"
        f"<header><h1>{html.escape(title)}</h1><div class=\"sub\">{subtitle}</div></header>\n"
        '<main>\n<pre id="report-errors"></pre>\n'
        f"{body}\n"
        f'<p class="note">Generated by deleverage with plotly {plotly.__version__}; '
        f"{'plotly.js is inlined: this file works offline.' if plotlyjs == 'inline' else 'plotly.js is loaded from ' + html.escape(plotlyjs) + ' beside this report (no network).'}</p>\n"
        f"</main>\n<script>{DRAW}</script>\n</body></html>\n"
    )


def section(title: str, content: str, anchor: str | None = None) -> str:
    ident = f' id="{anchor}"' if anchor else ""
    return f"<section{ident}><h2>{html.escape(title)}</h2>\n{content}\n</section>\n"


def esc(value: Any) -> str:
    return html.escape(str(value))


def fmt_pct(value: Any, digits: int = 2) -> str:
    from .format import fmt_pct as _fmt_pct

    return _fmt_pct(value, digits)


def fmt_num(value: Any, digits: int = 2) -> str:
    """A number: thousands separators, no exponent, never ``-0.00`` (see reports.format)."""
    if _missing(value):
        return "–"
    if isinstance(value, float) and math.isinf(value):
        return "∞" if value > 0 else "−∞"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) >= 1000):
        return f"{value:,.0f}"
    from .format import fmt_amount

    return fmt_amount(value, digits=digits if abs(float(value)) >= 0.01 or float(value) == 0 else None)


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN / NaT
    except (TypeError, ValueError):
        return False


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], left: int = 1, raw: bool = False,
          cls: str = "") -> str:
    """An HTML table; the first ``left`` columns are left-aligned; cells are escaped unless
    ``raw``; ``cls``: CSS classes (``kv``: a key/value table whose values wrap; ``wrapN``:
    column N wraps)."""
    out = [f'<table class="{cls}"><thead><tr>' if cls else "<table><thead><tr>"]
    out += [f'<th class="{"l" if i < left else ""}">{esc(h)}</th>' for i, h in enumerate(headers)]
    out.append("</tr></thead><tbody>")
    for row in rows:
        out.append("<tr>")
        for i, cell in enumerate(row):
            text = str(cell) if raw else esc(cell)
            out.append(f'<td class="{"l" if i < left else ""}">{text}</td>')
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def json_block(data: Any) -> str:
    return f"<pre>{esc(json.dumps(data, indent=2, default=str, sort_keys=False))}</pre>"
