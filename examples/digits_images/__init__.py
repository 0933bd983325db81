"""scikit-learn's bundled handwritten digits (1,797 real 8x8 scans) as PNG files and a manifest."""
