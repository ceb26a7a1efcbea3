# frozen_string_literal: true

require "erb"

module TaskerCore
  # Builds a libpq URL from an ActiveRecord-style configuration hash (adapter, host, port,
  # username, password, database, sslmode), as the Railtie does with the app's database.yml.
  module DatabaseUrl
    POSTGRES_ADAPTERS = %w[postgresql postgis].freeze

    module_function

    # A host that is a directory (a unix socket) travels as ?host=...; so does a port without a
    # TCP host. Raises Errors::ConfigurationError for a database that is not PostgreSQL.
    def from_config(config)
      hash = config.to_h.transform_keys(&:to_sym)
      adapter = hash[:adapter].to_s
      unless POSTGRES_ADAPTERS.include?(adapter)
        raise Errors::ConfigurationError,
              "the app's database adapter is #{adapter.inspect}: tasker_core needs PostgreSQL " \
              "(set database_url in config/tasker.yml)"
      end
      return hash[:url].to_s if hash[:url]

      host = hash[:host].to_s
      socket = host.start_with?("/")
      authority = socket ? "" : host
      query = {}
      query["host"] = host if socket
      if hash[:port]
        authority.empty? ? query["port"] = hash[:port].to_s : authority += ":#{hash[:port]}"
      end
      query["sslmode"] = hash[:sslmode].to_s if hash[:sslmode]
      "postgresql://#{userinfo(hash)}#{authority}/#{escape(hash[:database])}" \
        "#{query.empty? ? '' : "?#{query.map { |k, v| "#{k}=#{escape(v)}" }.join('&')}"}"
    end

    def userinfo(hash)
      return "" unless hash[:username]

      "#{escape(hash[:username])}#{hash[:password] ? ":#{escape(hash[:password])}" : ''}@"
    end

    def escape(value) = ERB::Util.url_encode(value.to_s)
  end
end
