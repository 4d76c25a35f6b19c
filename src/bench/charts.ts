/**
 * The report's three charts as SVG (ECharts' server-side renderer): p50 TTFT and KV-cached share
 * against concurrent sessions, each with its 95% bootstrap CI as a shaded band, and the TTFT CDF at
 * the largest sessions point.
 *
 * Rules, so that a chart reads at a glance:
 * - Each strategy has its own colour, marker and line style, fixed per name (`strategyStyle`): the
 *   same strategy looks the same in every chart of every report. The three baselines that know
 *   nothing of caches (roundrobin, random, leastloaded) are dashed; the reference strategy is drawn
 *   thicker. A name not in the table gets a style from a hash of the name, moved on to the next
 *   free one when another strategy of the same report already has it.
 * - The legend stands in its own column right of the plot, clear of the title and both axes.
 * - The sessions axis has integer ticks on a step of 1, 2, 4, 5, 10, … chosen for at most 8 ticks.
 * - Axis names carry their units; the subtitle names the run (the report's title) and its time
 *   base, read from that title: virtual time (offline simulator), wall clock at the simulated
 *   workers' time scale, or wall clock against real engines.
 * - Every chart shows a 95% band: the bootstrap CI of TTFT and KV cached at each point, and on the
 *   CDF the Dvoretzky-Kiefer-Wolfowitz band, the empirical CDF ± ε with ε = √(ln(2/0.05) / 2n) over
 *   n requests (it holds the whole true CDF at once with 95% confidence). The CDF also marks each
 *   strategy's p50, p90 and p99, where its curve crosses 50%, 90% and 99%.
 *
 * @module
 */

import * as echarts from "echarts";
import type { Metric, Report } from "./report.ts";

/** How one strategy is drawn. */
export interface SeriesStyle {
  /** Line, marker and band colour (`#rrggbb`). */
  readonly color: string;
  /** ECharts marker: a built-in name or a `path://` shape. */
  readonly symbol: string;
  /** `solid` for cache-aware strategies, `dashed` for the baselines. */
  readonly line: "solid" | "dashed";
}

/** Cross (plus sign) marker. */
const PLUS = "path://M3,0H5V3H8V5H5V8H3V5H0V3H3Z";
/** Five-pointed star marker. */
const STAR = "path://M5,0L6.2,3.5H10L7,5.7L8.1,9.3L5,7.1L1.9,9.3L3,5.7L0,3.5H3.8Z";

/**
 * The registry's strategies. Colours from a palette that stays apart on white (Tableau 10, its
 * yellow darkened); no two strategies share a colour or a marker.
 */
const STYLES: Readonly<Record<string, SeriesStyle>> = {
  roundrobin: { color: "#7f7f7f", symbol: "circle", line: "dashed" },
  random: { color: "#9c755f", symbol: "rect", line: "dashed" },
  leastloaded: { color: "#17becf", symbol: "triangle", line: "dashed" },
  prefixaware: { color: "#e15759", symbol: "diamond", line: "solid" },
  costaware: { color: "#4e79a7", symbol: "emptyCircle", line: "solid" },
  "sglang-cache-aware": { color: "#f28e2b", symbol: "emptyRect", line: "solid" },
  "llmd-weighted": { color: "#59a14f", symbol: "emptyTriangle", line: "solid" },
  "dynamo-cost": { color: "#b07aa1", symbol: "emptyDiamond", line: "solid" },
  "preble-e2": { color: "#c9a227", symbol: PLUS, line: "solid" },
};

/** Styles for names outside the table: colours and markers the table does not use first. */
const SPARE_COLORS = ["#ff9da7", "#1f3a93", "#8c564b", "#2ca02c", "#d62728", "#000000"];
const SPARE_SYMBOLS = [STAR, "roundRect", "pin", "arrow", "emptyRoundRect", "emptyPin"];

/**
 * The style of each of `names`, in order. Table names keep theirs; every other name gets the
 * spare style its name hashes to, or the next one not yet taken in `names`.
 */
export function strategyStyles(names: readonly string[]): SeriesStyle[] {
  const taken = new Set(names.filter((n) => n in STYLES).map((n) => key(STYLES[n])));
  const spares = SPARE_COLORS.flatMap((color, i) =>
    SPARE_SYMBOLS.map((_, j) => ({
      color,
      symbol: SPARE_SYMBOLS[(i + j) % SPARE_SYMBOLS.length],
      line: "solid" as const,
    }))
  );
  return names.map((n) => {
    if (n in STYLES) return STYLES[n];
    let i = hash(n) % spares.length;
    for (let tries = 0; tries < spares.length && taken.has(key(spares[i])); tries++) {
      i = (i + 1) % spares.length;
    }
    taken.add(key(spares[i]));
    return spares[i];
  });
}

function key(s: SeriesStyle): string {
  return `${s.color} ${s.symbol}`;
}

/** FNV-1a 32 of the name's UTF-16 units: stable across runs and platforms. */
function hash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/**
 * The time base of a run, read from its report title (as `cmd/bench.ts` writes it): `""` when the
 * title says nothing about it.
 */
export function timeBase(title: string): string {
  if (title.includes("offline simulator")) {
    return "Times: virtual (the offline simulator's model time, ms)";
  }
  const scale = /time scale ([0-9.]+)/.exec(title)?.[1];
  if (scale !== undefined) {
    return Number(scale) === 1
      ? "Times: wall clock, simulated workers in real time"
      : `Times: wall clock at time scale ${scale} (every model duration × ${scale})`;
  }
  if (/\d+ engines/.test(title)) return "Times: wall clock against real engines";
  return "";
}

/**
 * Integer ticks for the sessions axis: a step of 1, 2, 4, 5, 10, 20, 25, 50, … giving at most 8
 * intervals, and the range widened to whole steps.
 */
export function sessionTicks(sessions: readonly number[]): {
  min: number;
  max: number;
  interval: number;
} {
  const lo = Math.min(...sessions);
  const hi = Math.max(...sessions);
  if (!Number.isFinite(lo)) return { min: 0, max: 1, interval: 1 };
  if (lo === hi) return { min: Math.max(0, lo - 1), max: hi + 1, interval: 1 };
  let interval = 1;
  steps: for (let decade = 1;; decade *= 10) {
    for (const m of [1, 2, 4, 5]) {
      interval = m * decade;
      if ((hi - lo) / interval <= 8) break steps;
    }
  }
  return {
    min: Math.floor(lo / interval) * interval,
    max: Math.ceil(hi / interval) * interval,
    interval,
  };
}

const WIDTH = 960;
const HEIGHT = 560;
/** Room right of the plot for the legend column. */
const LEGEND_WIDTH = 200;

function render(option: Record<string, unknown>): string {
  const chart = echarts.init(null, null, {
    renderer: "svg",
    ssr: true,
    width: WIDTH,
    height: HEIGHT,
  });
  try {
    chart.setOption({ animation: false, backgroundColor: "#fff", ...option });
    return chart.renderToSVGString();
  } finally {
    chart.dispose();
  }
}

/** Title, subtitle, legend column, grid and axes common to the three charts. */
function frame(
  r: Report,
  title: string,
  note: string,
  x: Record<string, unknown>,
  y: Record<string, unknown> & { name: string },
) {
  const sub = [r.title, [timeBase(r.title), note].filter((s) => s !== "").join(". ")]
    .filter((s) => s !== "").join("\n");
  const axisName = { fontSize: 13, color: "#333" };
  return {
    title: {
      text: title,
      subtext: sub,
      left: 16,
      top: 10,
      textStyle: { fontSize: 17 },
      subtextStyle: { fontSize: 12, color: "#555", lineHeight: 17 },
    },
    legend: {
      data: r.strategies,
      orient: "vertical",
      right: 12,
      top: 100,
      itemWidth: 34,
      itemHeight: 12,
      itemGap: 12,
      textStyle: { fontSize: 13 },
    },
    grid: { top: 100, left: 80, right: LEGEND_WIDTH + 24, bottom: 64 },
    xAxis: {
      type: "value",
      nameLocation: "middle",
      nameGap: 32,
      nameTextStyle: axisName,
      ...x,
    },
    yAxis: {
      type: "value",
      nameLocation: "middle",
      nameGap: 54,
      nameTextStyle: axisName,
      ...y,
    },
  };
}

/** A line per strategy of `metric` against sessions, with its CI band when it has one. */
function sessionSeries(
  r: Report,
  styles: readonly SeriesStyle[],
  metric: (p: Report["points"][number]) => Metric,
  scale: number,
): Record<string, unknown>[] {
  const series: Record<string, unknown>[] = [];
  r.strategies.forEach((st, i) => {
    const { color, symbol, line } = styles[i];
    const ps = r.points.filter((p) => p.strategy === st && Number.isFinite(metric(p).value));
    const banded = ps.filter((p) => {
      const m = metric(p);
      return m.ciLo !== null && m.ciHi !== null && Number.isFinite(m.ciLo) &&
        Number.isFinite(m.ciHi);
    });
    // The band: an invisible lower line, and the CI width stacked on it as a filled area. Named
    // after the strategy, so its legend entry shows and hides the band with the line.
    for (const [part, y] of [["low", "ciLo"], ["width", "ciHi"]] as const) {
      series.push({
        name: st,
        id: `${st} CI ${part}`,
        type: "line",
        stack: `ci-${i}`,
        symbol: "none",
        lineStyle: { opacity: 0 },
        areaStyle: part === "width" ? { color, opacity: 0.14 } : undefined,
        data: banded.map((p) => {
          const m = metric(p);
          return [p.sessions, scale * (y === "ciLo" ? m.ciLo! : m.ciHi! - m.ciLo!)];
        }),
        silent: true,
        z: 1,
      });
    }
    series.push({
      name: st,
      id: st,
      type: "line",
      color,
      symbol,
      symbolSize: 9,
      lineStyle: { type: line, width: st === r.reference ? 3 : 2 },
      data: ps.map((p) => [p.sessions, scale * metric(p).value]),
      z: st === r.reference ? 4 : 3,
    });
  });
  // The legend icon is taken from the first series of a name: put the lines before the bands.
  return [...series.filter((s) => s.id === s.name), ...series.filter((s) => s.id !== s.name)];
}

/** The smallest multiple of 10 below every value in `xs` (at least 0), for a zoomed % axis. */
function floorTen(xs: readonly number[]): number {
  const lo = Math.min(...xs.filter(Number.isFinite));
  return Number.isFinite(lo) ? Math.max(0, Math.floor((lo - 2) / 10) * 10) : 0;
}

/** Half-width of the 95% DKW confidence band of an empirical CDF over `n` samples. */
export function dkwEpsilon(n: number): number {
  return Math.sqrt(Math.log(2 / 0.05) / (2 * n));
}

/** The DKW band of one CDF: an invisible lower step line and the band's width stacked on it. */
function cdfBand(c: Report["cdf"][number], i: number, color: string): Record<string, unknown>[] {
  const eps = c.requests > 0 ? dkwEpsilon(c.requests) : 0;
  const lo = c.points.map(([x, f]) => [x, 100 * Math.max(0, f - eps)]);
  const width = c.points.map(([x, f], j) => [x, 100 * Math.min(1, f + eps) - lo[j][1]]);
  return [["low", lo], ["width", width]].map(([part, data]) => ({
    name: c.strategy,
    id: `${c.strategy} band ${part}`,
    type: "line",
    step: "end",
    stack: `cdf-${i}`,
    symbol: "none",
    lineStyle: { opacity: 0 },
    areaStyle: part === "width" ? { color, opacity: 0.14 } : undefined,
    data,
    silent: true,
    z: 1,
  }));
}

/** The three charts as SVG strings, keyed by file name. */
export function renderCharts(r: Report): Record<string, string> {
  const styles = strategyStyles(r.strategies);
  const ticks = sessionTicks(r.sessions);
  const sessionsAxis = {
    name: "concurrent sessions",
    ...ticks,
    minInterval: 1,
    axisLabel: { formatter: (v: number) => String(Math.round(v)) },
  };
  const band = "Shaded: 95% bootstrap CI over requests pooled across seeds";

  const ttft = render({
    // Zoomed to the data (not from 0): strategies a few ms apart must not sit on one another.
    ...frame(r, "p50 TTFT vs concurrent sessions", band, sessionsAxis, {
      name: "p50 TTFT (ms)",
      scale: true,
    }),
    series: sessionSeries(r, styles, (p) => p.ttftP50, 1),
  });

  const kvValues = r.points.flatMap((p) => [p.kvCached.value, p.kvCached.ciLo ?? NaN])
    .map((x) => 100 * x);
  const kv = render({
    ...frame(r, "KV cached share vs concurrent sessions", band, sessionsAxis, {
      name: "KV cached (% of prompt tokens)",
      min: floorTen(kvValues),
      max: 100,
    }),
    series: sessionSeries(r, styles, (p) => p.kvCached, 100),
  });

  const top = r.cdf[0]?.sessions ?? 0;
  const cdf = render({
    ...frame(
      r,
      `TTFT CDF at ${top} concurrent sessions`,
      "Markers: each strategy's p50, p90 and p99. Shaded: 95% DKW band",
      { name: "TTFT (ms)", min: 0 },
      { name: "requests with TTFT ≤ x (%)", min: 0, max: 100 },
    ),
    series: cdfSeries(r, styles),
  });
  return { "ttft_p50.svg": ttft, "kv_cached.svg": kv, "ttft_cdf.svg": cdf };
}

/** Each strategy's CDF step line with its markers, then (for the legend icons) the bands. */
function cdfSeries(r: Report, styles: readonly SeriesStyle[]): Record<string, unknown>[] {
  const bands: Record<string, unknown>[] = [];
  const lines = r.cdf.map((c) => {
    const i = r.strategies.indexOf(c.strategy);
    const { color, symbol, line } = styles[i < 0 ? 0 : i];
    bands.push(...cdfBand(c, i, color));
    const marked = new Set(
      [0.5, 0.9, 0.99].map((q) => c.points.findIndex(([, f]) => f >= q)),
    );
    return {
      name: c.strategy,
      type: "line",
      step: "end",
      color,
      symbol,
      symbolSize: 9,
      showAllSymbol: true,
      lineStyle: { type: line, width: c.strategy === r.reference ? 3 : 2 },
      data: c.points.map(([x, f], j) => ({
        value: [x, 100 * f],
        symbol: marked.has(j) ? symbol : "none",
      })),
      z: c.strategy === r.reference ? 4 : 3,
    };
  });
  return [...lines, ...bands];
}
