//! Readers for gallery sources (manifests, folders) and the text-person datasets
//! (CUHK-PEDES, ICFG-PEDES, RSTPReid).
