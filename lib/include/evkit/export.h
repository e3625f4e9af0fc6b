/**
 * @file export.h
 * @brief EVK_EXPORT marks the declarations libevkit exports. The library is
 *        built with hidden visibility (lib/CMakeLists.txt), so whatever a
 *        public header does not declare with it stays inside the library.
 */
#ifndef EVKIT_EXPORT_H
#define EVKIT_EXPORT_H

#if defined(__GNUC__) || defined(__clang__)
#define EVK_EXPORT __attribute__((visibility("default")))
#else
#define EVK_EXPORT
#endif

#endif
