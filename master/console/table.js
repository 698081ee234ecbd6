// A table over rows held in the page: filter, sort (by header buttons or from outside) and
// pages of `pageSize` rows, so only one page of a long list is ever in the DOM.

import {h} from "./dom.js";

function compare(a, b) {
  if (a === b) return 0;
  if (a === null || a === undefined || a === "") return 1;
  if (b === null || b === undefined || b === "") return -1;
  if (typeof a === "number" && typeof b === "number") return a - b;
  return String(a).localeCompare(String(b), undefined, {numeric: true});
}

export class DataTable {
  /**
   * columns: [{key, label, value(row) (sort key), render(row) (cell content), sortable}]
   * headerSort: sort by clicking the column headers; rowKey(row) names a row (data-row).
   */
  constructor({columns, caption, testid, pageSize = 50, headerSort = true, empty = "Nothing here.",
    rowKey = (row) => row.id ?? row.name}) {
    this.columns = columns;
    this.pageSize = pageSize;
    this.headerSort = headerSort;
    this.empty = empty;
    this.rowKey = rowKey;
    this.testid = testid;
    this.rows = [];
    this.filter = null;
    this.sortKey = null;
    this.sortDir = 1;
    this.page = 0;
    this.tbody = h("tbody");
    this.thead = h("thead");
    this.summary = h("p", {class: "pager-summary", "aria-live": "polite",
      "data-testid": `${testid}-summary`});
    this.prev = h("button", {type: "button", class: "secondary", "data-testid": `${testid}-prev`,
      onclick: () => this.goto(this.page - 1)}, "Previous");
    this.next = h("button", {type: "button", class: "secondary", "data-testid": `${testid}-next`,
      onclick: () => this.goto(this.page + 1)}, "Next");
    this.el = h("div", {class: "table-wrap"},
      h("table", {"data-testid": testid}, caption ? h("caption", {}, caption) : null,
        this.thead, this.tbody),
      h("div", {class: "pager"}, this.summary, this.prev, this.next));
  }

  setRows(rows) {
    this.rows = rows || [];
    this.render();
  }

  setFilter(fn) {
    this.filter = fn;
    this.page = 0;
    this.render();
  }

  setSort(key, dir = 1) {
    this.sortKey = key;
    this.sortDir = dir;
    this.page = 0;
    this.render();
  }

  goto(page) {
    this.page = page;
    this.render();
  }

  visible() {
    let rows = this.filter ? this.rows.filter(this.filter) : [...this.rows];
    const column = this.columns.find((c) => c.key === this.sortKey);
    if (column) {
      const value = column.value || ((row) => row[column.key]);
      rows = rows.map((row, i) => [value(row), i, row])
        .sort((a, b) => compare(a[0], b[0]) * this.sortDir || a[1] - b[1])
        .map((t) => t[2]);
    }
    return rows;
  }

  renderHead() {
    const cells = this.columns.map((c) => {
      const sorted = this.sortKey === c.key;
      const aria = sorted ? (this.sortDir > 0 ? "ascending" : "descending") : null;
      if (!this.headerSort || c.sortable === false) {
        return h("th", {scope: "col"}, c.label);
      }
      const arrow = sorted ? (this.sortDir > 0 ? " ▲" : " ▼") : "";
      return h("th", {scope: "col", "aria-sort": aria},
        h("button", {type: "button", class: "sort", "data-testid": `sort-${c.key}`,
          onclick: () => this.setSort(c.key, sorted ? -this.sortDir : 1)},
        c.label, h("span", {"aria-hidden": "true"}, arrow)));
    });
    this.thead.replaceChildren(h("tr", {}, cells));
  }

  renderRow(row) {
    return h("tr", {"data-row": this.rowKey(row)}, this.columns.map((c, i) => h(
      i === 0 ? "th" : "td", i === 0 ? {scope: "row"} : {},
      c.render ? c.render(row) : String(row[c.key] ?? ""))));
  }

  render() {
    this.renderHead();
    const rows = this.visible();
    const pages = Math.max(1, Math.ceil(rows.length / this.pageSize));
    this.page = Math.min(Math.max(0, this.page), pages - 1);
    const start = this.page * this.pageSize;
    const slice = rows.slice(start, start + this.pageSize);
    if (!slice.length) {
      this.tbody.replaceChildren(h("tr", {}, h("td", {colspan: this.columns.length,
        class: "empty"}, this.empty)));
    } else {
      this.tbody.replaceChildren(...slice.map((row) => this.renderRow(row)));
    }
    const end = Math.min(rows.length, start + this.pageSize);
    this.summary.textContent = rows.length
      ? `${start + 1}–${end} of ${rows.length}${rows.length !== this.rows.length
        ? ` (${this.rows.length} in all)` : ""}; page ${this.page + 1} of ${pages}`
      : "";
    this.prev.disabled = this.page === 0;
    this.next.disabled = this.page >= pages - 1;
    this.prev.hidden = this.next.hidden = pages <= 1;
  }
}

/** A search box that calls onSearch(text) as the user types (debounced). */
export function searchBox({id, label, placeholder, onSearch, testid}) {
  let timer = null;
  const input = h("input", {type: "search", id, placeholder, "data-testid": testid,
    autocomplete: "off",
    oninput: () => {
      clearTimeout(timer);
      timer = setTimeout(() => onSearch(input.value.trim().toLowerCase()), 120);
    }});
  return h("div", {class: "field search"}, h("label", {for: id}, label), input);
}
