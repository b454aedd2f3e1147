/* A QEMU TCG plugin that counts the guest instructions a program executes
 * (every translated block adds its instruction count inline when it runs)
 * and prints the total at exit: "insns N". Built against qemu-plugin.h from
 * Debian's qemu source package, loaded by the plugin-enabled qemu-user:
 *
 *   qemu-arm -plugin ./insn_plugin.so -d plugin -D log PROGRAM ARGS
 *
 * Instructions are not cycles. Counts are exact for a single-threaded guest. */
#include <inttypes.h>
#include <stdio.h>

#include <qemu-plugin.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

static uint64_t executed;

static void translated(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &executed,
                                             qemu_plugin_tb_n_insns(tb));
}

static void finished(qemu_plugin_id_t id, void *unused)
{
    char line[64];
    (void)id;
    (void)unused;
    snprintf(line, sizeof line, "insns %" PRIu64 "\n", executed);
    qemu_plugin_outs(line);
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
                                           int argc, char **argv)
{
    (void)info;
    (void)argc;
    (void)argv;
    qemu_plugin_register_vcpu_tb_trans_cb(id, translated);
    qemu_plugin_register_atexit_cb(id, finished, NULL);
    return 0;
}
