# frozen_string_literal: true

require "spec_helper"
require "json"
require "open3"
require_relative "../../bench/run"

# The benchmark's own parts that can rot silently: the floor probe (plain libpq, no engine) and
# the percentile arithmetic. The figures themselves belong to `rake bench`, never to a spec.
RSpec.describe "the benchmark's floor probe and statistics" do
  it "builds the floor probe, which measures commits, NOTIFY round trips and drains its bare queue" do
    run = Bench::Run.allocate
    run.send(:build_floor)
    out, err, status = Open3.capture3({ "LD_PRELOAD" => nil }, Bench::FLOOR_BINARY, DATABASE_URL, "15", "300")
    expect(status).to be_success, err
    probe = JSON.parse(out)
    expect(probe["commit_ms"].size).to eq(15)
    expect(probe["notify_rtt_ms"].size).to eq(15)
    expect(probe["commit_ms"]).to all(be > 0)
    expect(probe["commit_ms"]).to eq(probe["commit_ms"].sort)
    expect(probe["queue_rows"]).to eq(300)
    expect(probe["queue_rows_per_s"]).to be > 0
    expect(psql_value("SELECT count(*) FROM pg_namespace WHERE nspname = 'tasker_bench'")).to eq("0")
  end

  it "refuses bad arguments with a usage line instead of running" do
    Bench::Run.allocate.send(:build_floor)
    _out, err, status = Open3.capture3(Bench::FLOOR_BINARY, DATABASE_URL, "0", "10")
    expect(status.exitstatus).to eq(2)
    expect(err).to include("SAMPLES and QUEUE_ROWS must be positive")
  end

  it "reports nearest-rank percentiles" do
    summary = Bench::Stats.summary((1..200).map(&:to_f).shuffle)
    expect(summary).to include("n" => 200, "p50" => 100.0, "p95" => 190.0, "p99" => 198.0, "min" => 1.0, "max" => 200.0)
    expect(Bench::Stats.summary([7.0])).to include("p50" => 7.0, "p99" => 7.0)
  end
end
