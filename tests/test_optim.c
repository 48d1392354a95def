/* A suite still being written: it checks only that its executable runs. */
#include "testutil.h"
static void test_suite_builds_and_runs(void **state)
{
    (void)state;
    assert_int_equal(loom_dtype_size(LOOM_F32), 4);
}
int main(void)
{
    const struct CMUnitTest tests[] = { cmocka_unit_test(test_suite_builds_and_runs) };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
