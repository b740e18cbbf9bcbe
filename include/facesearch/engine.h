// facesearch's library API, all of it: what the command line (or any other front end) calls.
//
// A corpus is one directory: corpus.sqlite (the source of truth) and index/ (derived vectors).
// The API is split by concern; include the part you use:
//   config.h       CorpusConfig, PipelineOptions, embedding modes, detectors, probe quality
//   ingest.h       IndexPaths and its options, outcomes and summary
//   query.h        QueryPhotos, QueryEmbedded, QuerySubjects, co-appearance
//   maintenance.h  info, duplicates, input issues, export, reindex, compact
// and corpus.h (the corpus handle), analyze.h, eval.h, privacy.h, embed.h, subject.h, users.h,
// verify.h, cluster.h for the rest. Functions never print; they report through return values and
// the optional callbacks, and log through spdlog's default logger, whose sinks the caller chooses.
#pragma once

#include "facesearch/config.h"
#include "facesearch/ingest.h"
#include "facesearch/maintenance.h"
#include "facesearch/query.h"
