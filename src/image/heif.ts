/**
 * HEIF containers (ISO/IEC 23008-12) read from their boxes, without decoding: whether a file is
 * HEIF, which codec its primary image uses (HEVC = HEIC, AV1 = AVIF), its size from the `ispe`
 * property, and whether the file holds every byte its boxes declare. pixdex decodes HEVC through
 * a WebAssembly libheif (./heic-decoder.ts) and checks the pixel limit here first, so a huge
 * image is refused before anything is allocated for it.
 */

/** Major or compatible brands of HEIF image files (HEVC, AV1 or generic). */
const HEIF_BRANDS = new Set(['heic', 'heix', 'hevc', 'hevx', 'heim', 'heis', 'hevm', 'hevs', 'mif1', 'msf1', 'mif2', 'miaf', 'avif', 'avis']);

/** Brands that only HEVC-coded HEIF files carry. */
const HEVC_BRANDS = new Set(['heic', 'heix', 'hevc', 'hevx', 'heim', 'heis', 'hevm', 'hevs']);

/** What the boxes of a HEIF file say. */
export interface HeifInfo {
  /** Codec of the primary image: 'hevc' (HEIC), 'av1' (AVIF) or another item type ('unknown'). */
  codec: 'hevc' | 'av1' | 'unknown';
  /** The largest image size its `ispe` properties declare (the primary image, or a grid's whole). */
  width: number;
  height: number;
  /** Whether the top-level boxes end exactly at the end of the file (false: cut short). */
  complete: boolean;
}

interface Box {
  type: string;
  /** Offset of the payload (after the header) and of the end of the box, in the file. */
  start: number;
  end: number;
}

/** The boxes in `b[from, to)`; stops at a box that runs past `to` (reported in `overrun`). */
function boxes(b: Buffer, from: number, to: number): { list: Box[]; overrun: boolean } {
  const list: Box[] = [];
  let at = from;
  while (at + 8 <= to) {
    let size = b.readUInt32BE(at);
    const type = b.toString('latin1', at + 4, at + 8);
    let header = 8;
    if (size === 1) {
      if (at + 16 > to) return { list, overrun: true };
      size = Number(b.readBigUInt64BE(at + 8));
      header = 16;
    } else if (size === 0) {
      size = to - at; // to the end
    }
    if (size < header) return { list, overrun: true };
    if (at + size > to) {
      list.push({ type, start: at + header, end: to });
      return { list, overrun: true };
    }
    list.push({ type, start: at + header, end: at + size });
    at += size;
  }
  return { list, overrun: at !== to };
}

/** The HEIF brands of an `ftyp` box at the start of the file, or undefined when it is not HEIF. */
export function heifBrands(input: Uint8Array): string[] | undefined {
  const b = Buffer.from(input.buffer, input.byteOffset, input.length);
  if (b.length < 16 || b.toString('latin1', 4, 8) !== 'ftyp') return undefined;
  const size = Math.min(b.readUInt32BE(0), b.length);
  const brands = [b.toString('latin1', 8, 12)];
  for (let at = 16; at + 4 <= size; at += 4) brands.push(b.toString('latin1', at, at + 4));
  return brands.some((brand) => HEIF_BRANDS.has(brand)) ? brands : undefined;
}

/** Item types by id from `iinf` (infe version 2 and 3). */
function itemTypes(b: Buffer, iinf: Box): Map<number, string> {
  const types = new Map<number, string>();
  const version = b[iinf.start];
  const first = iinf.start + 4 + (version === 0 ? 2 : 4);
  for (const infe of boxes(b, first, iinf.end).list) {
    if (infe.type !== 'infe' || infe.end - infe.start < 12) continue;
    const v = b[infe.start];
    if (v < 2) continue;
    const idSize = v === 2 ? 2 : 4;
    const id = idSize === 2 ? b.readUInt16BE(infe.start + 4) : b.readUInt32BE(infe.start + 4);
    const typeAt = infe.start + 4 + idSize + 2;
    if (typeAt + 4 <= infe.end) types.set(id, b.toString('latin1', typeAt, typeAt + 4));
  }
  return types;
}

/** Reads a HEIF file's boxes; undefined when it is not a HEIF file (no HEIF `ftyp`). */
export function inspectHeif(input: Uint8Array): HeifInfo | undefined {
  if (!heifBrands(input)) return undefined;
  const b = Buffer.from(input.buffer, input.byteOffset, input.length);
  const top = boxes(b, 0, b.length);
  const info: HeifInfo = { codec: 'unknown', width: 0, height: 0, complete: !top.overrun };
  const meta = top.list.find((box) => box.type === 'meta');
  if (!meta) return info;
  const children = boxes(b, meta.start + 4, meta.end).list; // meta is a full box
  const pitm = children.find((box) => box.type === 'pitm');
  const iinf = children.find((box) => box.type === 'iinf');
  const iprp = children.find((box) => box.type === 'iprp');
  const types = iinf ? itemTypes(b, iinf) : new Map<number, string>();
  const pitmSize = pitm ? (b[pitm.start] === 0 ? 2 : 4) : 0;
  const primary = pitm && pitm.end - pitm.start >= 4 + pitmSize ? b.readUIntBE(pitm.start + 4, pitmSize) : undefined;
  const primaryType = primary === undefined ? undefined : types.get(primary);
  // a grid, overlay or derived image is made of coded items: its codec is theirs
  const coded = primaryType === 'hvc1' || primaryType === 'av01' ? primaryType : [...types.values()].find((t) => t === 'hvc1' || t === 'av01');
  // no readable item of a known codec (a damaged `meta`): the HEVC or AV1 brands still tell
  const brands = heifBrands(input) ?? [];
  const branded = brands.some((brand) => HEVC_BRANDS.has(brand)) ? 'hevc' : brands.includes('avif') || brands.includes('avis') ? 'av1' : 'unknown';
  info.codec = coded === 'hvc1' ? 'hevc' : coded === 'av01' ? 'av1' : branded;
  const ipco = iprp ? boxes(b, iprp.start, iprp.end).list.find((box) => box.type === 'ipco') : undefined;
  for (const prop of ipco ? boxes(b, ipco.start, ipco.end).list : []) {
    if (prop.type !== 'ispe' || prop.end - prop.start < 12) continue;
    const width = b.readUInt32BE(prop.start + 4);
    const height = b.readUInt32BE(prop.start + 8);
    if (width * height > info.width * info.height) Object.assign(info, { width, height });
  }
  return info;
}
