/**
 * The one guard on serving a file of the library: only the file recorded for an image id (no
 * route takes a path), and only while it holds the very content that was indexed. Thumbnails are
 * made from what it returns; originals are what it returns.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { NotFoundError } from '../src/errors.ts';

/** What is read for one image: its recorded file and the content hash it was indexed with. */
export interface IndexedFile {
  id: number;
  path: string;
  /** Content hash: a file whose bytes changed since it was indexed is not served. */
  sha256: string;
}

/**
 * The bytes of an indexed image's file; NotFoundError when it has no file on disk (a record
 * without an absolute path), cannot be read, or now holds other content (another image, or a
 * symlink to a non-image swapped in for it). `purpose` ends the first message ("to serve").
 */
export async function readIndexedFile(src: IndexedFile, purpose: string): Promise<Buffer> {
  if (!path.isAbsolute(src.path)) {
    throw new NotFoundError(`Image ${src.id} has no file ${purpose}.`);
  }
  let input: Buffer;
  try {
    input = await fs.readFile(src.path);
  } catch {
    throw new NotFoundError(`The file of image ${src.id} is no longer readable; re-index its folder or delete the image.`);
  }
  if (createHash('sha256').update(input).digest('hex') !== src.sha256) {
    throw new NotFoundError(`The file of image ${src.id} has changed since it was indexed; re-index its folder.`);
  }
  return input;
}
