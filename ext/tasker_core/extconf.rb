# frozen_string_literal: true

# Builds ext/tasker_core: the pure-C engine (core/) and its Ruby binding (binding/) as one .so.
#
# Environment switches:
#   MAINTAINER_MODE=1          -Werror -g -O0
#   TASKER_SANITIZE=address    build the core with AddressSanitizer (+ UBSan everywhere)

require "mkmf"
require "shellwords"

def missing!(what, package)
  abort <<~MSG
    *** tasker_core: #{what} was not found.
    *** On Debian or Ubuntu install it with:  sudo apt-get install #{package}
  MSG
end

# libpq: pg_config first, then pkg-config.
pg_config = with_config("pg-config") || find_executable("pg_config")
if pg_config
  $INCFLAGS << " -I#{Shellwords.escape(`#{pg_config} --includedir`.strip)}"
  $LDFLAGS << " -L#{Shellwords.escape(`#{pg_config} --libdir`.strip)}"
else
  pkg_config("libpq")
end
missing!("libpq (the PostgreSQL client library and headers)", "libpq-dev") unless
  have_header("libpq-fe.h") && have_library("pq", "PQconnectdbParams")

# json-c: pkg-config.
pkg_config("json-c")
missing!("json-c (headers and library)", "libjson-c-dev") unless
  have_header("json-c/json.h") && have_library("json-c", "json_tokener_new_ex")

# libmicrohttpd: the worker's optional web server (core/tc_web.c).
pkg_config("libmicrohttpd")
missing!("libmicrohttpd (headers and library)", "libmicrohttpd-dev") unless
  have_header("microhttpd.h") && have_library("microhttpd", "MHD_start_daemon")

have_library("pthread", "pthread_create")

$CFLAGS << " -std=gnu99 -fvisibility=hidden -Wall -Wextra -Wno-unused-parameter" \
           " -Wno-missing-field-initializers -pthread"
if ENV["MAINTAINER_MODE"]
  $CFLAGS << " -Werror -g -O0"
end
if ENV["TASKER_SANITIZE"] == "address"
  $CFLAGS << " -fsanitize=address,undefined -fno-omit-frame-pointer -g -O1"
  $LDFLAGS << " -fsanitize=address,undefined"
end

src = __dir__
$srcs = Dir[File.join(src, "{core,binding}", "*.c")].map { |f| File.basename(f) }.sort
$VPATH << "$(srcdir)/core" << "$(srcdir)/binding"
$INCFLAGS << " -I$(srcdir)/core -I$(srcdir)/binding -I."

# The schema migrations are compiled into the library.
generator = File.join(src, "gen_migrations.rb")
system(RbConfig.ruby, generator, File.join(src, "sql"), "tc_migrations.h") or
  abort "*** tasker_core: could not generate tc_migrations.h"

create_makefile("tasker_core/tasker_core")

# Regenerate the embedded migrations whenever a .sql file changes.
File.open("Makefile", "a") do |mk|
  mk.puts
  mk.puts "tc_migrations.h: $(srcdir)/gen_migrations.rb $(wildcard $(srcdir)/sql/migrations/*.sql) $(wildcard $(srcdir)/sql/functions/*.sql)"
  mk.puts "\t$(RUBY) $(srcdir)/gen_migrations.rb $(srcdir)/sql tc_migrations.h"
  mk.puts "tc_migrate.o: tc_migrations.h"
  # mkmf tracks no headers: an object compiled against an older struct layout would be linked
  # with the new ones. Every object depends on every header of the engine.
  mk.puts "$(OBJS): $(wildcard $(srcdir)/core/*.h) $(wildcard $(srcdir)/binding/*.h)"
  if ENV["TASKER_SANITIZE"] == "address"
    # Ruby raises with longjmp over the binding's frames, which AddressSanitizer cannot see: their
    # stale redzones would be reported later in Ruby's own code. Only the core is instrumented.
    binding_objects = Dir[File.join(src, "binding", "*.c")].map { |f| File.basename(f, ".c") + ".o" }
    mk.puts "#{binding_objects.join(' ')}: CFLAGS += -fno-sanitize=address"
  end
end
