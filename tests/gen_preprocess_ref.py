#!/usr/bin/python3
"""Reference uint8 crops of every dev image, for tests/test_image.c.

    gen_preprocess_ref.py SHARED OUT

Runs shared/reference/preprocess.py (Pillow decode + numpy Resize/CenterCrop, bit-exact with
the zoo's torchvision pipeline) on each image listed in SHARED/data/dev-manifest.tsv and writes
OUT/<wnid>/<file>.u8.hwc (224*224*3 bytes, HWC).  OUT/COMPLETE is written last and holds the
image count, so an interrupted run is redone instead of trusted.
"""
import os
import sys


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    shared, out = sys.argv[1], sys.argv[2]
    sys.path.insert(0, os.path.join(shared, 'reference'))
    import preprocess

    with open(os.path.join(shared, 'data', 'dev-manifest.tsv')) as f:
        rows = [line.rstrip('\n').split('\t') for line in f][1:]
    paths = [r[0] for r in rows if r and r[0]]

    stamp = os.path.join(out, 'COMPLETE')
    if os.path.exists(stamp) and open(stamp).read().strip() == str(len(paths)):
        return
    for rel in paths:
        crop, _ = preprocess.preprocess_u8(preprocess.decode_rgb(os.path.join(shared, 'data', 'dev', rel)))
        dst = os.path.join(out, rel + '.u8.hwc')
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        crop.tofile(dst + '.tmp')
        os.replace(dst + '.tmp', dst)
    with open(stamp, 'w') as f:
        f.write('%d\n' % len(paths))


if __name__ == '__main__':
    main()
