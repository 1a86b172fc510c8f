// pixdex web page: the Browse view. The library page by page (all images, or one label's), each
// image with its full name, label and date; open or download the original, find similar images,
// remove it from the library; add photos by drop, picker or camera (token permitting).
// app.js owns the API client and the messages and passes them in (initBrowse), so this module
// imports nothing and the two never import each other.

const $ = (id) => document.getElementById(id);
/** The largest offset the API takes: asking for it gives the total, and load() turns it into the last page. */
const LAST_OFFSET = 0xffff_ffff;

/**
 * Wires the Browse view. `ctx`: { api, ApiError, showError, clearError, shortName, countText,
 * takenNode, similar(id), labelsChanged() } from app.js. Returns { show, setLabels, addFiles }.
 */
export function initBrowse(ctx) {
  const el = {
    label: $('browse-label'), order: $('browse-order'), size: $('browse-size'), status: $('browse-status'), grid: $('browse-grid'),
    prev: $('browse-prev'), next: $('browse-next'), page: $('browse-page'), template: $('browse-template'),
    add: $('browse-add'), file: $('browse-file'), camera: $('browse-camera'),
  };
  /** The page shown: its first image's place in the list; `total` from the last answer. */
  const state = { offset: 0, total: 0, loaded: false };
  /** Increases with every load, so a slow answer never overwrites a newer one. */
  let seq = 0;

  const limit = () => Number(el.size.value) || 24;

  function setStatus(text) {
    el.status.textContent = text;
  }

  /** Loads the page at `offset` (kept within the list); `note` (what was just done) leads the status. */
  async function load(offset = state.offset, note = '') {
    const q = new URLSearchParams({ offset: String(Math.max(0, offset)), limit: String(limit()) });
    if (el.label.value) q.set('label', el.label.value);
    if (el.order.value !== 'added') q.set('order', el.order.value);
    const mine = ++seq;
    el.grid.setAttribute('aria-busy', 'true');
    try {
      let r = await ctx.api('GET', `/api/images?${q}`);
      if (r.images.length === 0 && r.offset > 0 && r.total > 0) {
        // past the end (images were removed): the last page instead
        q.set('offset', String(Math.floor((r.total - 1) / r.limit) * r.limit));
        r = await ctx.api('GET', `/api/images?${q}`);
      }
      if (mine !== seq) return;
      state.offset = r.offset;
      state.total = r.total;
      state.loaded = true;
      el.grid.replaceChildren(...r.images.map(card));
      const first = r.images.length ? r.offset + 1 : 0;
      const last = r.offset + r.images.length;
      const what = el.label.value ? `labelled “${el.label.value}”` : 'in the library';
      el.page.textContent = r.total ? `${first.toLocaleString()}–${last.toLocaleString()} of ${r.total.toLocaleString()}` : '';
      el.prev.disabled = r.offset === 0;
      el.next.disabled = last >= r.total;
      setStatus(`${note ? `${note} ` : ''}${r.total ? `${ctx.countText(r.total, 'image')} ${what}.` : `No images ${what} yet.`}`);
    } catch (err) {
      if (mine !== seq) return;
      el.grid.replaceChildren(); // an error replaces what was shown: nothing stale under it
      el.page.textContent = '';
      el.prev.disabled = true;
      el.next.disabled = true;
      setStatus(note);
      ctx.showError(err);
    } finally {
      if (mine === seq) el.grid.setAttribute('aria-busy', 'false');
    }
  }

  /** One image: thumbnail (opens the original), full name, label, date, and what can be done with it. */
  function card(img) {
    const li = el.template.content.firstElementChild.cloneNode(true);
    const name = ctx.shortName(img.path);
    li.dataset.id = String(img.id);
    li.dataset.path = img.path;
    li.dataset.label = img.label ?? '';
    const original = `/api/images/${img.id}/original`;
    const thumb = li.querySelector('.thumb');
    thumb.href = original;
    thumb.setAttribute('aria-label', `Open the original of ${name}`);
    const pic = thumb.querySelector('img');
    pic.src = img.thumbnailUrl;
    pic.alt = `${name}${img.label ? `, labelled ${img.label}` : ''}`;
    const nameEl = li.querySelector('.name');
    nameEl.textContent = name;
    nameEl.title = img.path;
    const chip = li.querySelector('.label-chip');
    chip.textContent = img.label ?? 'unlabelled';
    chip.classList.toggle('none', !img.label);
    const taken = li.querySelector('.taken');
    if (img.takenAt) {
      taken.replaceChildren(ctx.takenNode(img.takenAt));
      taken.hidden = false;
    }
    const open = li.querySelector('.open');
    open.href = original;
    open.setAttribute('aria-label', `Open the original of ${name}`);
    const download = li.querySelector('.download');
    download.href = `${original}?download=true`;
    download.setAttribute('aria-label', `Download the original of ${name}`);
    const similar = li.querySelector('.similar');
    similar.setAttribute('aria-label', `Find images similar to ${name}`);
    similar.addEventListener('click', () => ctx.similar(img.id));
    const remove = li.querySelector('.remove');
    remove.setAttribute('aria-label', `Remove ${name} from the library`);
    remove.addEventListener('click', () => removeImage(li, img, name));
    return li;
  }

  /** Removes an image from the library (its file stays on disk; an upload's stored copy goes with it). */
  async function removeImage(li, img, name) {
    const upload = !img.mtimeMs;
    const message = `Remove ${name} from the library?\n\n`
      + (upload ? 'It was uploaded: the server’s stored copy is deleted with it.' : 'Its file stays on disk; indexing its folder again brings it back.');
    if (!confirm(message)) return;
    ctx.clearError();
    const buttons = li.querySelectorAll('button');
    buttons.forEach((b) => { b.disabled = true; });
    try {
      await ctx.api('DELETE', `/api/images/${img.id}`, { auth: true });
    } catch (err) {
      if (!(err instanceof ctx.ApiError && err.status === 404)) { // 404: removed elsewhere meanwhile
        buttons.forEach((b) => { b.disabled = false; });
        ctx.showError(err);
        return;
      }
    }
    const index = [...el.grid.children].indexOf(li);
    await load(state.offset, `Removed ${name} from the library.`);
    ctx.labelsChanged();
    const at = el.grid.children[Math.min(index, el.grid.children.length - 1)];
    (at ? at.querySelector('.remove') : el.label).focus();
  }

  /** Adds photos to the library, one upload at a time, with the label being browsed (if any). */
  async function addFiles(files) {
    const list = [...files].filter(Boolean);
    if (list.length === 0) return;
    ctx.clearError();
    const label = el.label.value;
    let added = 0;
    let known = 0;
    for (const f of list) {
      setStatus(`Adding ${(added + known + 1).toLocaleString()} of ${list.length.toLocaleString()}: ${f.name || 'photo'}…`);
      const form = new FormData();
      form.append('image', f, f.name || 'photo.jpg');
      if (label) form.append('label', label);
      try {
        const r = await ctx.api('POST', '/api/images', { body: form, auth: true, withStatus: true });
        if (r.status === 201) added++;
        else known++;
      } catch (err) {
        ctx.showError(err);
        break;
      }
    }
    const note = `Added ${ctx.countText(added, 'photo')}${known ? ` (${known.toLocaleString()} already in the library)` : ''}${label && added ? ` labelled “${label}”` : ''}.`;
    // the new images are at the end of the list (ids grow): show the last page
    await load(added ? LAST_OFFSET : state.offset, added || known ? note : '');
    if (added || known) ctx.labelsChanged();
  }

  for (const select of [el.label, el.order]) {
    select.addEventListener('change', () => {
      ctx.clearError();
      load(0);
    });
  }
  el.size.addEventListener('change', () => load(Math.floor(state.offset / limit()) * limit()));
  el.prev.addEventListener('click', () => load(Math.max(0, state.offset - limit())));
  el.next.addEventListener('click', () => load(state.offset + limit()));
  for (const input of [el.file, el.camera]) {
    input.addEventListener('change', () => {
      const files = [...(input.files || [])];
      input.value = ''; // choosing the same files again adds again
      addFiles(files);
    });
  }

  return {
    /** Called when the tab is shown: the page it was on, fresh. */
    show: () => load(state.loaded ? state.offset : 0),
    /** The label choices, kept in step with app.js's list. */
    setLabels(labels) {
      const chosen = el.label.value;
      el.label.replaceChildren(new Option('All labels', ''), ...labels.map(({ label, count }) => new Option(`${label} (${count})`, label)));
      el.label.value = labels.some((l) => l.label === chosen) ? chosen : '';
    },
    addFiles,
    /** The drop zone that marks a drag over this view. */
    dropZone: el.add,
  };
}
