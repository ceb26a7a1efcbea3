# frozen_string_literal: true

require "json"
require "openssl"
require "securerandom"
require "time"
require "uri"

module TaskerCore
  # A Rack app with three parts (docs/web.md):
  #
  # - the worker web server's GET routes from the FFI (/health..., /metrics..., /config,
  #   /templates...), the same text the C server sends (the cache mutations stay FFI-only here);
  # - the orchestration REST API under /v1 (Web::API, SPEC 5);
  # - the operators' dashboard (Web::Dashboard): server-rendered pages at /, /tasks, /dlq, /catalog.
  #
  #   # config/routes.rb
  #   authenticate :user, ->(u) { u.admin? } do
  #     mount TaskerCore::Web.new => "/tasker"
  #   end
  #
  # Needs no rack gem: it is a plain object with call(env). Standalone (`tasker web`), api_key: or
  # basic_auth: protect every route; neither is set by default (the server binds to loopback).
  class Web
    JSON_TYPE = "application/json"
    PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
    SEGMENT = "([^/]+)"

    ROUTES = [
      [%r{\A/health\z}, ->(_m, _q) { FFI.health_basic }],
      [%r{\A/health/ready\z}, ->(_m, _q) { FFI.health_ready }],
      [%r{\A/health/live\z}, ->(_m, _q) { FFI.health_live }],
      [%r{\A/health/detailed\z}, ->(_m, _q) { FFI.health_detailed }],
      [%r{\A/metrics\z}, ->(_m, _q) { FFI.metrics_prometheus }, PROMETHEUS_TYPE],
      [%r{\A/metrics/worker\z}, ->(_m, _q) { FFI.metrics_worker }],
      [%r{\A/metrics/events\z}, ->(_m, _q) { FFI.metrics_events }],
      [%r{\A/config\z}, ->(_m, _q) { FFI.config_runtime }],
      [%r{\A/templates\z}, lambda { |_m, q|
        ns = q["namespace"].to_s
        FFI.templates_list(%w[true 1].include?(q["include_cache_stats"]), ns.empty? ? nil : ns)
      }],
      [%r{\A/templates/cache/stats\z}, ->(_m, _q) { FFI.templates_cache_stats }],
      [%r{\A/templates/#{SEGMENT}/#{SEGMENT}/#{SEGMENT}\z}, ->(m, _q) { FFI.template_get(*m.captures) }],
      [%r{\A/templates/#{SEGMENT}/#{SEGMENT}/#{SEGMENT}/validate\z}, ->(m, _q) { FFI.template_validate(*m.captures) }]
    ].freeze

    HTML_TYPE = "text/html; charset=utf-8"
    MAX_BODY_BYTES = 1_048_576

    # A refusal answered as JSON (or as a page on the dashboard) with its status code.
    class Problem < StandardError
      attr_reader :status, :error, :field, :headers

      def initialize(status, error, message, field: nil, headers: {})
        super(message)
        @status = status
        @error = error
        @field = field
        @headers = headers
      end
    end

    attr_reader :max_body_bytes

    # api_key: accepted in the X-API-Key header (api_key_header:), as "Authorization: Bearer KEY",
    # or as the password of basic auth (the user name is then the operator's name). basic_auth:
    # [user, password]. Either set means every request needs it (401 otherwise); neither (the
    # default) means none does, for an app that protects the mount itself. operator: a callable
    # (env -> String) naming who acts, recorded in the audit of every action (default: the basic
    # auth user, else "api"). read_only: true serves no action.
    def initialize(api_key: nil, api_key_header: "X-API-Key", basic_auth: nil, operator: nil, read_only: false,
                   max_body_bytes: MAX_BODY_BYTES)
      @api_key = api_key.to_s.empty? ? nil : api_key.to_s
      @api_key_env = "HTTP_#{api_key_header.upcase.tr('-', '_')}"
      @basic_auth = basic_auth&.map(&:to_s)
      if @basic_auth && (@basic_auth.size != 2 || @basic_auth.any?(&:empty?))
        raise Errors::ConfigurationError, "basic_auth must be [user, password], both non-empty"
      end
      @operator = operator
      @read_only = read_only
      @max_body_bytes = max_body_bytes
    end

    def read_only? = @read_only
    def auth_enabled? = !@api_key.nil? || !@basic_auth.nil?

    def self.call(env) = new.call(env)

    def call(env)
      path = env["PATH_INFO"].to_s.sub(%r{(?<=.)/+\z}, "")
      path = "/" if path.empty?
      api = path == "/v1" || path.start_with?("/v1/")
      return serve(env, path, api) if api || Dashboard.route?(path)
      return unauthorized(env, true) unless authenticated?(env)

      worker_route(env, path)
    end

    # Who acts, for the audit: the operator callable's answer, the basic-auth user, or "api".
    def operator(env)
      name = @operator&.call(env)
      name = basic_credentials(env)&.first if name.to_s.empty?
      name = env["REMOTE_USER"] if name.to_s.empty?
      name.to_s.empty? ? "api" : name.to_s[0, 255]
    end

    # Helpers shared by the API and the dashboard.
    def self.json(status, body, headers = {})
      [status, { "content-type" => JSON_TYPE, "cache-control" => "no-store" }.merge(headers), [JSON.generate(body)]]
    end

    # A client response (a Dry::Struct, an Array of them, or plain data) as plain JSON data.
    def self.plain(value)
      case value
      when Dry::Struct then plain(value.to_h)
      when Hash then value.to_h { |k, v| [k.to_s, plain(v)] }
      when Array then value.map { |v| plain(v) }
      else value
      end
    end

    # The query string's parameters (bytes that are not UTF-8 decode to U+FFFD).
    def self.query(env)
      URI.decode_www_form(env["QUERY_STRING"].to_s, Encoding::UTF_8).to_h
    rescue ArgumentError
      raise Problem.new(400, "bad_request", "the query string is not well formed", field: "query")
    end

    # The request body, at most limit bytes (413 past it).
    def self.read_body(env, limit)
      length = env["CONTENT_LENGTH"].to_s
      if !length.empty? && length.to_i > limit
        raise Problem.new(413, "payload_too_large", "the request body is #{length} bytes; the limit is #{limit}")
      end

      input = env["rack.input"]
      text = input ? input.read(limit + 1).to_s : ""
      raise Problem.new(413, "payload_too_large", "the request body is over the limit of #{limit} bytes") if text.bytesize > limit

      text.force_encoding(Encoding::UTF_8)
      raise Problem.new(400, "bad_request", "the request body is not valid UTF-8", field: "body") unless text.valid_encoding?

      text
    end

    def self.error_body(error, message, field = nil)
      { "error" => error, "message" => message, "field" => field, "timestamp" => Time.now.utc.iso8601,
        "request_id" => SecureRandom.uuid }.compact
    end

    private

    def serve(env, path, api)
      return unauthorized(env, api) unless authenticated?(env)

      # One handler per request: the server may run requests on many threads at once.
      api ? API.new(self).call(env, path) : Dashboard.new(self).call(env, path)
    rescue Problem => e
      respond_error(env, api, e.status, e.error, e.message, e.field, e.headers)
    rescue Errors::ValidationError => e
      # The engine's refusals of a value name the field as the message's first word ("priority
      # must be ..."): a 400 naming it; one that names none is a 422.
      field = e.field || e.message[/\A(?:[a-z_]+ failed: )?([a-z_]+(?:\[\d+\])?(?:\.[a-z_]+)*) (?:must|is|has)\b/, 1]
      respond_error(env, api, field ? 400 : 422, field ? "bad_request" : "unprocessable_entity", e.message, field)
    rescue ArgumentError => e
      respond_error(env, api, 400, "bad_request", e.message)
    rescue Errors::NotFoundError => e
      respond_error(env, api, 404, "not_found", e.message)
    rescue Errors::StateError => e
      respond_error(env, api, 409, "conflict", e.message)
    rescue Errors::TemplateError, Errors::ConfigurationError => e
      respond_error(env, api, 422, "unprocessable_entity", e.message)
    rescue Errors::WorkerStoppedError, Errors::DatabaseError => e
      respond_error(env, api, 503, "service_unavailable", e.message)
    rescue StandardError => e
      TaskerCore.config.logger.error("TaskerCore::Web: #{e.class}: #{e.message} (#{env['REQUEST_METHOD']} #{path})")
      respond_error(env, api, 500, "internal_error", "the request could not be served (the server log has the cause)")
    end

    def respond_error(env, api, status, error, message, field = nil, headers = {})
      return Web.json(status, Web.error_body(error, message, field), headers) if api

      Dashboard.new(self).error_page(env, status, error, message, field, headers)
    end

    def authenticated?(env)
      return true unless auth_enabled?

      if @api_key
        header = env[@api_key_env].to_s
        bearer = env["HTTP_AUTHORIZATION"].to_s[/\ABearer (.+)\z/, 1]
        return true if [header, bearer].any? { |given| !given.to_s.empty? && OpenSSL.secure_compare(given.to_s, @api_key) }
      end
      user, password = basic_credentials(env)
      return false if password.nil?
      return true if @api_key && OpenSSL.secure_compare(password, @api_key)

      # Both compared, whatever the first answer, so the time taken says nothing about which failed.
      !@basic_auth.nil? && (OpenSSL.secure_compare(user, @basic_auth[0]) & OpenSSL.secure_compare(password, @basic_auth[1]))
    end

    def basic_credentials(env)
      encoded = env["HTTP_AUTHORIZATION"].to_s[/\ABasic ([A-Za-z0-9+\/=]+)\z/, 1]
      return nil unless encoded

      user, password = encoded.unpack1("m").force_encoding(Encoding::UTF_8).split(":", 2)
      password && user.valid_encoding? && password.valid_encoding? ? [user, password] : nil
    end

    def unauthorized(env, api)
      headers = { "www-authenticate" => %(Basic realm="tasker", charset="UTF-8") }
      message = "authentication required: #{@api_key ? 'an API key or ' : ''}basic auth"
      return Web.json(401, Web.error_body("unauthorized", message), headers) if api

      Dashboard.new(self).error_page(env, 401, "unauthorized", message, nil, headers)
    end

    def worker_route(env, path)
      match = nil
      route = ROUTES.find { |r| match = r[0].match(path) }
      return error(404, "not_found", "no route for #{path}") unless route
      unless %w[GET HEAD].include?(env["REQUEST_METHOD"])
        return error(405, "method_not_allowed", "#{env['REQUEST_METHOD']} is not allowed on #{path}",
                     "allow" => "GET, HEAD")
      end

      body = route[1].call(match, Web.query(env))
      status = route[0].source.include?("ready") && !body.include?('"status":"ready"') ? 503 : 200
      [status, { "content-type" => route[2] || JSON_TYPE, "cache-control" => "no-store" }, [body]]
    rescue Problem => e
      error(e.status, e.error, e.message)
    rescue Errors::NotFoundError => e
      error(404, "not_found", e.message)
    rescue Errors::ValidationError => e
      error(400, "bad_request", e.message)
    rescue Errors::WorkerStoppedError, Errors::DatabaseError => e
      error(503, "service_unavailable", e.message)
    end

    private

    def error(status, error, message, headers = {})
      body = JSON.generate(error: error, message: message, timestamp: Time.now.utc.iso8601,
                           request_id: SecureRandom.uuid)
      [status, { "content-type" => JSON_TYPE }.merge(headers), [body]]
    end
  end
end

require_relative "web/api"
require_relative "web/dashboard"
