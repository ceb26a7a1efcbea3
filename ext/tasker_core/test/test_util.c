/*
 * test_util.c - tests of the core's utilities: UUID v7.
 */
#include <stdio.h>
#include <string.h>

#include "tc_test.h"

void test_uuid(const char *url) {
  char a[37], b[37];
  tc_uuid_v7(a);
  tc_uuid_v7(b);
  CHECK(tc_uuid_valid(a), "%s", a);
  CHECK(a[14] == '7', "version nibble of %s", a);
  CHECK(strchr("89ab", a[19]) != NULL, "variant of %s", a);
  CHECK(strcmp(a, b) != 0, "two uuids are equal");
  CHECK(!tc_uuid_valid("not-a-uuid"), "accepted junk");
  CHECK(!tc_uuid_valid(NULL), "accepted NULL");
}
