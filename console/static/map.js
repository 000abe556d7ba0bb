/* carewatch console: drawing a map ([data-map] boxes; console.js calls cwDrawMap for each
 * after a page loads or htmx swaps one in).
 *
 * The JSON is built on the server (console/maps.py), every point and zone already moved
 * onto the tiles' datum (WGS-84, or GCJ-02 for Chinese tiles): nothing is converted here.
 * { tiles: {url, attribution, subdomains, max_zoom} | null,
 *   points: [{lat, lon, label, severity?, href?}],
 *   zones: [{name, center: [lat, lon], radius_m} | {name, polygon: [[lat, lon], ...]}] }
 * Without tiles (a closed network) the map is a plain ground with a scale.
 * A box with role="img" is a picture: no controls, nothing to click, nothing focusable.
 */
(function () {
  "use strict";

  const COLOURS = { critical: "#a4001d", warning: "#7a4a00", info: "#0b4f8a" };
  const ZONE = "#1b5e20";
  const EARTH_M_PER_DEG = 111320;

  function label(text) {
    // Tooltips take HTML: names go in as text.
    const span = document.createElement("span");
    span.textContent = text;
    return span;
  }

  function circleBounds(center, radius) {
    const dLat = radius / EARTH_M_PER_DEG;
    const dLon = radius / (EARTH_M_PER_DEG * Math.max(0.01, Math.cos((center[0] * Math.PI) / 180)));
    return L.latLngBounds([center[0] - dLat, center[1] - dLon], [center[0] + dLat, center[1] + dLon]);
  }

  window.cwDrawMap = function (box, data) {
    const still = box.getAttribute("role") === "img";
    const tiles = data.tiles && data.tiles.url ? data.tiles : null;
    const maxZoom = tiles ? tiles.max_zoom || 19 : 19;
    const map = L.map(box, {
      zoomControl: !still, keyboard: !still, dragging: !still, scrollWheelZoom: false,
      doubleClickZoom: !still, boxZoom: !still, touchZoom: !still, attributionControl: false,
      maxZoom,
    });
    box.cwMap = map;
    if (tiles) {
      const options = { attribution: tiles.attribution || "", maxZoom };
      if (tiles.subdomains && tiles.subdomains.length) options.subdomains = tiles.subdomains;
      L.tileLayer(tiles.url, options).addTo(map);
      L.control.attribution({ prefix: false }).addTo(map);
    } else {
      box.classList.add("no-tiles");
    }
    L.control.scale({ imperial: false }).addTo(map);

    const bounds = L.latLngBounds([]);
    for (const zone of data.zones || []) {
      const style = { color: ZONE, weight: 2, dashArray: "6 4", fillOpacity: 0.12, interactive: !still };
      let shape;
      if (zone.polygon) {
        shape = L.polygon(zone.polygon, style);
        bounds.extend(L.latLngBounds(zone.polygon));
      } else {
        shape = L.circle(zone.center, Object.assign({ radius: zone.radius_m }, style));
        bounds.extend(circleBounds(zone.center, zone.radius_m));
      }
      shape.bindTooltip(label(zone.name), { className: "zone-label", sticky: !still, permanent: still });
      shape.addTo(map);
    }
    for (const point of data.points || []) {
      const colour = COLOURS[point.severity] || COLOURS.info;
      const marker = L.circleMarker([point.lat, point.lon], {
        radius: point.severity === "critical" ? 10 : 8, color: "#ffffff", weight: 2,
        fillColor: colour, fillOpacity: 0.95, interactive: !still,
      });
      marker.bindTooltip(label(point.label), {
        permanent: true, direction: "right", offset: [10, 0],
        className: "map-label" + (point.severity ? " sev-" + point.severity : ""),
      });
      if (point.href && !still) marker.on("click", () => { window.location.href = point.href; });
      marker.addTo(map);
      bounds.extend([point.lat, point.lon]);
    }
    if (bounds.isValid()) map.fitBounds(bounds, { padding: [40, 40], maxZoom: Math.min(17, maxZoom) });
    else map.setView([35, 105], 4); // nothing to show: China
    box.dataset.points = String((data.points || []).length);
    box.dataset.zones = String((data.zones || []).length);
    return map;
  };
})();
