# frozen_string_literal: true

require "spec_helper"
require "json"
require "open3"
require "tmpdir"
require_relative "../../bench/run"

# The peers part of the benchmark must not fail where its optional gems or servers are missing:
# each peer is skipped with a one-line reason. The figures themselves belong to `rake bench`.
RSpec.describe "the benchmark's peers" do
  let(:root) { File.expand_path("../..", __dir__) }

  it "skips every peer when the bench_peers group is not installed, without touching a database" do
    script = <<~RUBY
      require "json"
      require "./bench/run"
      results = Bench::Peers::Runner.new(url: "postgresql:///no_such_database?host=/nonexistent", samples: 10,
                                         drain_jobs: 10, log_dir: Dir.tmpdir).call
      puts "RESULT " + JSON.generate(results)
    RUBY
    out, err, status = Dir.mktmpdir do |empty_config|
      # An empty bundle configuration: the optional group stays off whatever this checkout enabled.
      Open3.capture3({ "BUNDLE_APP_CONFIG" => empty_config }, RbConfig.ruby, "-e", script, chdir: root)
    end
    expect(status).to be_success, err
    results = JSON.parse(out[/^RESULT (.*)$/, 1])
    expect(results.keys).to eq(%w[delayed_job que sidekiq])
    expect(results.values).to all(include("skipped"))
    expect(results.values_at("delayed_job", "que").map { |r| r["skipped"] }).to all(include("bench_peers group"))
    expect(out).to include("Delayed::Job: skipped, gem not loadable")
  end

  it "skips Sidekiq when redis-server is not on PATH" do
    path = ENV.fetch("PATH")
    Dir.mktmpdir("no-redis") do |empty|
      ENV["PATH"] = empty
      expect(Bench::Peers::Sidekiq.new.missing).to eq("redis-server not on PATH")
    ensure
      ENV["PATH"] = path
    end
  end

  it "prints each peer beside the engine's figures with the ratio ours / theirs" do
    peers = {
      "que" => { "label" => "Que", "drain" => { "jobs_per_s" => 400.0 }, "pickup_ms" => { "p50" => 2.0 },
                 "chain_ms" => { "p50" => 8.0 } },
      "sidekiq" => { "label" => "Sidekiq", "drain" => { "jobs_per_s" => 16_000.0 }, "pickup_ms" => { "p50" => -0.1 },
                     "chain_ms" => { "p50" => 1.0 } },
      "delayed_job" => { "label" => "delayed_job", "skipped" => "gem not loadable" }
    }
    header, ours, que, sidekiq, delayed = Bench::Peers.table(peers, { drain: 1200.0, pickup: 1.0, chain: 4.0 })
    expect(header.size).to eq(4)
    expect(ours).to eq(["tasker_core (this run)", "1200", "1.00", "4.00"])
    expect(que).to eq(["Que", "400 (3.00x)", "2.00 (0.50x)", "8.00 (0.50x)"])
    expect(sidekiq[2]).to eq("-0.10 (starts before enqueue returns)")
    expect(delayed).to eq(["delayed_job", "skipped: gem not loadable", "", ""])
  end
end
