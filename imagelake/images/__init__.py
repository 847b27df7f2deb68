"""One image: admission checks, facts and EXIF, perceptual hash, rendering of derivatives."""
